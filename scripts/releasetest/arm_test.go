package releasetest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// armBuilds are the ARM device binaries of scripts/build-balena-migrate,
// each with the qemu user emulator and the oldest CPU it must run on, and
// the machine name (uname -m) that CPU reports.
var armBuilds = []struct{ name, qemu, cpu, machine string }{
	{"armv6", "qemu-arm-static", "arm1176", "armv6l"}, // Pi 1, Zero
	{"armv7", "qemu-arm-static", "cortex-a7", "armv7l"},
	{"arm64", "qemu-aarch64-static", "cortex-a53", "aarch64"}, // Pi 3, the first 64-bit one
}

// The ARM builds of balena-migrate run, under qemu's user emulation, on the
// oldest CPU of their architecture: --version, stage 1's refusals (no
// config, not root, and as root on hardware it cannot migrate: the
// machine name the emulated CPU reports) and extract, whose output must be
// the image inside the flasher. The armv7 build must not start on the
// ARMv6 CPU: the emulation holds the builds to their instruction sets.
func TestARMBuildsRunUnderQemu(t *testing.T) {
	testenv.NeedRoot(t, "the builds run as nobody and as root in a mount namespace of their own")
	testenv.Need(t, runtime.GOARCH == "amd64" || runtime.GOARCH == "386", "an x86 machine (no device tree or ARM firmware that a root run could take for a device)")
	for _, p := range []string{"go", "git", "qemu-arm-static", "qemu-aarch64-static", "unshare", "mkfs.vfat", "mkfs.ext4", "mcopy", "sfdisk"} {
		testenv.NeedProgram(t, p)
	}
	// Not t.TempDir, whose parent only root may enter: "nobody" runs here too.
	dir, err := os.MkdirTemp("", "armbuilds-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dist")
	start := time.Now()
	cmd := exec.Command(filepath.Join(repo, "scripts/build-balena-migrate"), out)
	cmd.Env = append(os.Environ(), "VERSION=9.8.7-armtest", "COMMIT=0123456789ab", "BUILD_DATE="+built)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-balena-migrate: %v\n%s", err, b)
	}
	t.Logf("scripts/build-balena-migrate took %v", time.Since(start).Round(time.Second))

	inner := filepath.Join(dir, "balena.img")
	if _, err := testimg.BalenaOS(inner); err != nil {
		t.Fatal(err)
	}
	flasher := filepath.Join(dir, "flasher.img")
	if _, err := testimg.Flasher(flasher, inner, testimg.FlasherFiles{ImageName: "os.balenaos-img", InternalCfg: []byte("# internal grub.cfg\n")}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(inner)
	if err != nil {
		t.Fatal(err)
	}

	for _, b := range armBuilds {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(out, "balena-migrate-"+b.name)
			emu := func(args ...string) []string {
				return append([]string{b.qemu, "-cpu", b.cpu, bin}, args...)
			}
			work := filepath.Join(dir, b.name)
			if err := os.Mkdir(work, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(work, 0o777)

			stdout, code := qemuRun(t, work, nil, emu("--version")...)
			if want := "balena-migrate version 9.8.7-armtest (commit 0123456789ab, built " + built + ")"; code != 0 || strings.TrimSpace(stdout) != want {
				t.Errorf("--version: exit %d, %q, want %q", code, stdout, want)
			}

			stdout, code = qemuRun(t, work, nil, emu("--pretend")...)
			if code != 2 || !strings.Contains(stdout, "balena-migrate.conf not found") {
				t.Errorf("--pretend without a config: exit %d, want 2 and the missing config named:\n%s", code, stdout)
			}
			conf := "IMAGE_NAME=resin-raspberrypi3-2.99.0.img.gz\nBALENA_API_HOST=127.0.0.1\nBALENA_API_PORT=9\nBALENA_VPN_HOST=\n"
			if err := os.WriteFile(filepath.Join(work, "balena-migrate.conf"), []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
			stdout, code = qemuRun(t, work, nobody, emu("--pretend", "--home", work)...)
			if code != 1 || !strings.Contains(stdout, "ERROR: failed (stage1): not running as root: balena-migrate must run as root") {
				t.Errorf("--pretend as nobody: exit %d, want 1 and a refusal to run without root:\n%s", code, stdout)
			}
			// As root, in a mount namespace without firmware tables: no
			// device tree, no UEFI. The refusal names the emulated CPU.
			args := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
				`mount -t tmpfs none /sys/firmware && exec "$@"`, "sh"}, emu("--pretend", "--home", work)...)
			stdout, code = qemuRun(t, work, nil, args...)
			if want := "ERROR: failed (device_type): unsupported device: " + b.machine + " board (no /proc/device-tree/model)"; code != 1 || !strings.Contains(stdout, want) {
				t.Errorf("--pretend as root on an x86 host: exit %d, want 1 and %q:\n%s", code, want, stdout)
			}

			img := filepath.Join(work, "os.img.gz")
			stdout, code = qemuRun(t, work, nil, emu("extract", "--img", img, "--grub", filepath.Join(work, "grub.cfg"), "--config", filepath.Join(work, "x.conf"), flasher)...)
			if code != 0 {
				t.Fatalf("extract: exit %d\n%s", code, stdout)
			}
			if got, err := testimg.Gunzip(img); err != nil || !bytes.Equal(got, want) {
				t.Errorf("extract wrote %d bytes that are not the %d-byte image inside the flasher (%v)", len(got), len(want), err)
			}
			if cfg, err := os.ReadFile(filepath.Join(work, "grub.cfg")); err != nil || string(cfg) != "# internal grub.cfg\n" {
				t.Errorf("extract --grub: %q, %v", cfg, err)
			}
		})
	}

	// An ARMv6 CPU refuses the ARMv7 build.
	stdout, code := qemuRun(t, dir, nil, "qemu-arm-static", "-cpu", "arm1176", filepath.Join(out, "balena-migrate-armv7"), "--version")
	if code == 0 || strings.Contains(stdout, "version 9.8.7") {
		t.Errorf("the armv7 build ran on an ARMv6 CPU (exit %d): the emulation does not hold builds to their CPU\n%s", code, stdout)
	}
}

// qemuRun runs args in dir, as cred when set, and returns the combined
// output and exit code.
func qemuRun(t *testing.T, dir string, cred *syscall.Credential, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s (%v): exit %v", strings.Join(args[min(len(args)-1, 3):], " "), time.Since(start).Round(time.Millisecond), err)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}
