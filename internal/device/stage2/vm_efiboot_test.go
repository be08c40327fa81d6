package stage2_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/balenaimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// On a UEFI machine the old boot entries point at an EFI system partition
// the flash replaced. Stage 2 (booted by OVMF) writes an entry for the
// loader on the new resin-boot and puts it first in BootOrder; the next
// boot, from the disk alone, starts the balenaOS stand-in through that
// entry — its BootCurrent, read from the firmware's variables, is the entry
// stage 2 wrote, not a removable-media fallback of the firmware's own.
func TestVMStage2WritesTheUEFIBootEntry(t *testing.T) {
	t.Parallel()
	testenv.NeedFile(t, ovmfCode, "install Debian's ovmf package (scripts/test-packages)")
	k, err := vmtest.FindKernel()
	if err != nil {
		t.Fatal(err)
	}
	fx := newVMFixture(t, false, func(fx *vmFixture) {
		fx.build = func(t *testing.T, path string) testimg.Image {
			standin := filepath.Join(filepath.Dir(path), "balenaos-standin")
			if err := balenaimg.BuildStandin(context.Background(), "../../..", standin); err != nil {
				t.Fatal(err)
			}
			img, err := balenaimg.BuildGPT(context.Background(), balenaimg.Options{Path: path, Kernel: k, Standin: standin})
			if err != nil {
				t.Fatal(err)
			}
			return img.Image
		}
	})
	fx.toGPT(t)
	vars := filepath.Join(fx.dir, "OVMF_VARS.fd")
	if err := os.WriteFile(vars, mustReadFile(t, ovmfVars), 0o644); err != nil {
		t.Fatal(err)
	}
	firmware := []string{"-drive", "if=pflash,format=raw,readonly=on,file=" + ovmfCode, "-drive", "if=pflash,format=raw,file=" + vars}
	fx.qemuArgs = firmware
	fx.modules = []string{"efivarfs"}
	res := fx.boot(t)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\nconsole:\n%s", res.ExitCode, res.Console)
	}
	m := regexp.MustCompile(`UEFI boot entry Boot([0-9A-F]{4}) \(balenaOS HD\(1,GPT,[0-9a-f-]{36},0x800,0x10000\)/File\(\\EFI\\BOOT\\BOOTX64.EFI\)\) written, first in BootOrder`).FindStringSubmatch(res.Console)
	if m == nil {
		t.Fatalf("stage 2 wrote no boot entry for resin-boot:\n%s", res.Console)
	}
	entry, _ := strconv.ParseUint(m[1], 16, 16)

	// The next boot: the firmware and the flashed disk, nothing else.
	second, err := vmtest.Boot(context.Background(), vmtest.VM{Disks: []string{fx.disk}, Args: append(firmware, "-nic", "none")})
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, second.Console)
	}
	if !strings.Contains(second.Console, balenaimg.MarkBoot) {
		t.Fatalf("the stand-in did not boot:\n%s", second.Console)
	}
	em := regexp.MustCompile(balenaimg.MarkEFI + `BootCurrent=([0-9a-f]*) BootOrder=([0-9a-f]*)`).FindStringSubmatch(second.Console)
	if em == nil {
		t.Fatalf("the stand-in printed no firmware variables:\n%s", second.Console)
	}
	current, order := efiData(t, em[1]), efiData(t, em[2])
	if len(current) != 2 || binary.LittleEndian.Uint16(current) != uint16(entry) {
		t.Errorf("BootCurrent %x: the firmware did not start Boot%04X, the entry stage 2 wrote", current, entry)
	}
	if len(order) < 2 || binary.LittleEndian.Uint16(order) != uint16(entry) {
		t.Errorf("BootOrder %x does not start with Boot%04X", order, entry)
	}
	if t.Failed() {
		t.Logf("stage 2:\n%s\nnext boot:\n%s", res.Console, second.Console)
	}
}

// efiData decodes a variable as efivarfs holds it (hex) to its data.
func efiData(t *testing.T, h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) < 4 {
		t.Fatalf("efivarfs bytes %q", h)
	}
	return b[4:]
}

func mustReadFile(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
