package stage2_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/flash"
	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// measureEnv makes the test binary the measured process: it runs stage 2's
// verify, flash and read-back of IMAGE (gzip) onto DEV as stage 2 does and
// prints how much its resident memory grew at the peak.
const measureEnv = "BALENA_MIGRATE_MEASURE_FLASH" // IMAGE,SHA256,DEV

func TestMain(m *testing.M) {
	if spec := os.Getenv(measureEnv); spec != "" {
		os.Exit(measureFlash(spec))
	}
	os.Exit(m.Run())
}

func measureFlash(spec string) int {
	f := strings.Split(spec, ",")
	base := statusKiB("VmRSS")
	ctx := context.Background()
	n, err := flash.VerifyImage(ctx, f[0], f[1], flash.Options{})
	if err == nil {
		var in *os.File
		if in, err = os.Open(f[0]); err == nil {
			_, err = flash.Image(ctx, f[2], in, f[1], flash.Options{Size: n})
			in.Close()
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("base_kib=%d peak_kib=%d\n", base, statusKiB("VmHWM"))
	return 0
}

func statusKiB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// memMargin is what the kernel needs on top of stage 2's own peak while it
// flashes (page tables, the block layer, a minimum of page cache for
// writeback) and the spread between machines: half again.
const memMargin = 1.5

// MEM_MIN_FREE (stage 2's headroom once image and files are in RAM) comes
// from a measurement, not a guess: stage 2's verify, flash and read-back of
// a 128 MiB image onto a loop device, in a process of its own, must grow
// its resident memory by no more than the default divided by memMargin.
// `go test -v -run MemMinFree ./internal/device/stage2` prints the figure.
func TestMemMinFreeCoversTheFlash(t *testing.T) {
	testenv.NeedRoot(t, "a loop device to flash")
	dir := t.TempDir()
	raw := filepath.Join(dir, "image.img")
	data := make([]byte, 128<<20)
	rand.Read(data[:48<<20]) // part incompressible, part zeros, as an image is
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	gz := raw + ".gz"
	sha, err := testimg.Gzip(raw, gz)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	target := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(target, int64(len(data))+testimg.MiB)
	dev, detach, err := testimg.Loop(target, false)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), measureEnv+"="+gz+","+sha+","+dev)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("measured run: %v\n%s", err, out)
	}
	var base, peak int64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "base_kib=%d peak_kib=%d", &base, &peak); err != nil {
		t.Fatalf("measured run said %q", out)
	}
	grew := (peak - base) << 10
	def := s2config.Default().MemMinFree
	t.Logf("verify, flash and read-back of 128 MiB: resident memory %d MiB -> %d MiB at the peak (+%d MiB); MEM_MIN_FREE default %d MiB",
		base>>10, peak>>10, grew>>20, def>>20)
	if float64(def) < memMargin*float64(grew) {
		t.Errorf("the default MEM_MIN_FREE (%d MiB) is less than %.1f times what flashing takes (%d MiB)", def>>20, memMargin, grew>>20)
	}
}
