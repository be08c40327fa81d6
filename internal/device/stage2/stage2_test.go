package stage2_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/device/stage2"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// hostFixture runs stage 2 on the host against plain files: ROOT_MNT is a
// directory, BOOT_DEV a regular file. Everything up to the point of no
// return behaves as on a device.
type hostFixture struct {
	cfg      s2config.Config
	raw      []byte // uncompressed image
	bootDev  string
	bootHash string
}

func newHostFixture(t *testing.T) *hostFixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	img, err := testimg.BalenaOS(filepath.Join(dir, "balena.img"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "m"), 0o755)
	sha, err := testimg.Gzip(img.Path, filepath.Join(root, "m", "os.img.gz"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "m", "config.json"), []byte(`{"uuid":"x"}`), 0o600)
	os.WriteFile(filepath.Join(root, "m", "backup.tgz"), []byte("backup"), 0o600)
	fx := &hostFixture{bootDev: filepath.Join(dir, "disk")}
	fx.raw, _ = os.ReadFile(img.Path)
	os.WriteFile(fx.bootDev, bytes.Repeat([]byte{0x5A}, int(img.Size)+testimg.MiB), 0o644)
	fx.bootHash, _ = testimg.SHA256File(fx.bootDev, -1)
	c := s2config.Default()
	c.BootDev, c.RootMnt, c.HomeDir, c.ImageFile, c.ImageSHA256 = fx.bootDev, root, "/m", "os.img.gz", sha
	c.BackupFile, c.BalenaConfig = "backup.tgz", "config.json"
	c.MigrateTmp, c.MemMinFree = filepath.Join(dir, "tmp"), 0
	fx.cfg = c
	return fx
}

func (fx *hostFixture) run(t *testing.T) (int, string) {
	t.Helper()
	var out bytes.Buffer
	err := stage2.Run(context.Background(), fx.cfg, stage2.Options{NoReboot: true, Console: &out})
	return exitcode.Of(err), out.String()
}

func (fx *hostFixture) untouched(t *testing.T) {
	t.Helper()
	if h, _ := testimg.SHA256File(fx.bootDev, -1); h != fx.bootHash {
		t.Error("BOOT_DEV changed before the point of no return")
	}
}

// logKept checks that the log of a run that stopped before flashing is in
// HOME_DIR on the old root and says why it stopped.
func (fx *hostFixture) logKept(t *testing.T, why string) {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(fx.cfg.RootMnt, fx.cfg.HomeDir, "balena-migrate-stage2.log"))
	if err != nil || !bytes.Contains(log, []byte(why)) || !bytes.Contains(log, []byte("saving this log to /m/balena-migrate-stage2.log")) {
		t.Errorf("log on the old root: %v\n%s", err, log)
	}
}

var lineRe = regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ balena-migrate\] (INFO|WARN|ERROR): \S`)

func TestNoFlashStopsAfterVerifying(t *testing.T) {
	fx := newHostFixture(t)
	code, out := fx.run(t)
	if code != 0 || !strings.Contains(out, "image verified") || !strings.Contains(out, "NO_FLASH=TRUE") {
		t.Fatalf("code %d\n%s", code, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !lineRe.MatchString(l) {
			t.Errorf("log line %q does not match the format", l)
		}
	}
	for _, f := range []string{"os.img.gz", "config.json", "backup.tgz"} {
		if _, err := os.Stat(filepath.Join(fx.cfg.MigrateTmp, f)); err != nil {
			t.Errorf("%s not staged in MIGRATE_TMP: %v", f, err)
		}
	}
	fx.untouched(t)
	fx.logKept(t, "NO_FLASH=TRUE: stopping before flashing")
}

func TestTermExitCodeForDeliberateStop(t *testing.T) {
	fx := newHostFixture(t)
	fx.cfg.TermExit = s2config.TermExit{Code: 3}
	if code, out := fx.run(t); code != 3 {
		t.Fatalf("code %d, want TERM_EXIT's 3\n%s", code, out)
	}
}

func TestFailuresBeforeFlashingLeaveDiskUntouched(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*hostFixture)
		want   string
	}{
		"corrupt image": {func(fx *hostFixture) { fx.cfg.ImageSHA256 = strings.Repeat("ab", 32) }, "SHA-256 mismatch"},
		"no memory":     {func(fx *hostFixture) { fx.cfg.MemMinFree = 1 << 50 }, "not enough memory"},
		"no backup":     {func(fx *hostFixture) { fx.cfg.BackupFile = "missing.tgz" }, "BACKUP_FILE"},
		"small disk": {func(fx *hostFixture) {
			os.Truncate(fx.bootDev, testimg.MiB)
			fx.bootHash, _ = testimg.SHA256File(fx.bootDev, -1)
		}, "the image needs"},
	} {
		t.Run(name, func(t *testing.T) {
			fx := newHostFixture(t)
			fx.cfg.NoFlash = false
			tc.change(fx)
			code, out := fx.run(t)
			if code != 1 || !strings.Contains(out, tc.want) || !strings.Contains(out, "the disk is untouched") {
				t.Errorf("code %d, want 1 and %q\n%s", code, tc.want, out)
			}
			fx.untouched(t)
			fx.logKept(t, tc.want)
		})
	}
}

// Past the point of no return a failure (here: a regular file has no
// partitions for the kernel to show) ends in a reboot, or with --no-reboot
// in exit code 1 — never in handing back to the old system.
func TestFailureAfterFlashingRebootsOrExits1(t *testing.T) {
	fx := newHostFixture(t)
	fx.cfg.NoFlash = false
	code, out := fx.run(t)
	if code != 1 || !strings.Contains(out, "point of no return passed") || !strings.Contains(out, "failed after flashing started; rebooting") {
		t.Fatalf("code %d\n%s", code, out)
	}
	if strings.Contains(out, "handing back") {
		t.Error("handed back to the old system after flashing")
	}
	disk, _ := os.ReadFile(fx.bootDev)
	if !bytes.Equal(disk[:len(fx.raw)], fx.raw) {
		t.Error("image not flashed before the failure")
	}
}

// MAX_BADBLOCKS without badblocks in the initramfs stops before the point of
// no return instead of skipping the scan.
func TestBadblocksMissingStopsBeforeFlashing(t *testing.T) {
	fx := newHostFixture(t)
	fx.cfg.NoFlash, fx.cfg.MaxBadblocks = false, "0"
	t.Setenv("PATH", t.TempDir())
	code, out := fx.run(t)
	if code != 1 || !strings.Contains(out, "badblocks is not in the initramfs") || !strings.Contains(out, "the disk is untouched") {
		t.Fatalf("code %d\n%s", code, out)
	}
	fx.untouched(t)
}

// A dry run (NO_FLASH) scans for bad blocks too: the scan is read-only.
func TestNoFlashRunsTheBadblockScan(t *testing.T) {
	testenv.NeedProgram(t, "badblocks")
	fx := newHostFixture(t)
	fx.cfg.MaxBadblocks = "0"
	code, out := fx.run(t)
	if code != 0 || !strings.Contains(out, "0 bad blocks found (MAX_BADBLOCKS=0)") || !strings.Contains(out, "NO_FLASH=TRUE") {
		t.Fatalf("code %d\n%s", code, out)
	}
	fx.untouched(t)
}

// A boot file is restored only from a backup that is what stage 1 saved; a
// damaged or missing one leaves the file alone.
func TestRestoreChecksTheBackupFirst(t *testing.T) {
	fx := newHostFixture(t)
	root := fx.cfg.RootMnt
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	orig := "dtparam=audio=on\n"
	changed := orig + "initramfs balena-migrate-initramfs followkernel\n"
	for _, f := range []string{"good.txt", "torn.txt", "lost.txt", "empty.txt"} {
		write(f, changed)
	}
	write("good.txt.bak", orig)
	write("torn.txt.bak", orig[:5])
	write("empty.txt.bak", "")
	fx.cfg.RestoreBootFiles = []s2config.RestorePair{
		{Backup: "good.txt.bak", Original: "good.txt", SHA256: sum(orig)},
		{Backup: "torn.txt.bak", Original: "torn.txt", SHA256: sum(orig)},
		{Backup: "lost.txt.bak", Original: "lost.txt", SHA256: sum(orig)},
		{Backup: "empty.txt.bak", Original: "empty.txt"},
	}
	_, out := fx.run(t)
	for f, want := range map[string]string{"good.txt": orig, "torn.txt": changed, "lost.txt": changed, "empty.txt": changed} {
		if got, _ := os.ReadFile(filepath.Join(root, f)); string(got) != want {
			t.Errorf("%s = %q, want %q\n%s", f, got, want, out)
		}
	}
	for _, w := range []string{"restored good.txt", "not restoring torn.txt", "not restoring lost.txt", "not restoring empty.txt"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q\n%s", w, out)
		}
	}
}

// A disk with 4096-byte logical sectors (4Kn) is refused before the point
// of no return: flashed, its 512-byte-sector image would have every
// partition 8 times too far in on the next boot. A 512-byte loop device of
// the same file goes on (to NO_FLASH's stop).
func TestRefusesDiskWith4KSectors(t *testing.T) {
	testenv.NeedRoot(t, "loop devices")
	testenv.NeedProgram(t, "losetup")
	for _, tc := range []struct {
		sector string
		want   string
	}{{"4096", "has 4096-byte logical sectors"}, {"512", "NO_FLASH=TRUE: stopping before flashing"}} {
		t.Run(tc.sector, func(t *testing.T) {
			t.Parallel()
			fx := newHostFixture(t)
			fx.cfg.NoFlash = tc.sector == "512"
			out, err := exec.Command("losetup", "--find", "--show", "--sector-size", tc.sector, fx.bootDev).CombinedOutput()
			if err != nil {
				t.Fatalf("losetup: %v: %s", err, out)
			}
			loop := strings.TrimSpace(string(out))
			// Detached once: a second detach could take away a loop device
			// that a parallel test has been given since.
			detach := sync.OnceFunc(func() { exec.Command("losetup", "-d", loop).Run() })
			t.Cleanup(detach)
			fx.cfg.BootDev = loop
			code, log := fx.run(t)
			if !strings.Contains(log, tc.want) || !strings.Contains(log, "the disk is untouched") {
				t.Fatalf("code %d, want %q\n%s", code, tc.want, log)
			}
			if tc.sector == "4096" && code != 1 {
				t.Fatalf("code %d, want 1\n%s", code, log)
			}
			detach()
			fx.untouched(t)
		})
	}
}

// A NetworkManager file keeps its name, spaces and all ("Wired connection
// 1.nmconnection"), through the stage-2 config file into RAM.
func TestNetworkFileNamesWithSpaces(t *testing.T) {
	fx := newHostFixture(t)
	names := []string{"Wired connection 1.nmconnection", "100% office.nmconnection"}
	for _, n := range names {
		os.WriteFile(filepath.Join(fx.cfg.RootMnt, "m", n), []byte("[connection]\nid="+n+"\n"), 0o600)
	}
	fx.cfg.NetworkConfigs = names
	data, err := fx.cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if fx.cfg, err = s2config.Parse(data); err != nil {
		t.Fatal(err)
	}
	code, out := fx.run(t)
	if code != 0 {
		t.Fatalf("code %d\n%s", code, out)
	}
	for _, n := range names {
		got, err := os.ReadFile(filepath.Join(fx.cfg.MigrateTmp, "system-connections", n))
		if err != nil || !strings.Contains(string(got), "id="+n) {
			t.Errorf("%q not staged whole: %v\n%s", n, err, out)
		}
	}
}

// A stage 2 that hands back (a refusal, or NO_FLASH's rehearsal) removes
// what stage 1 installed for the stage-2 boot, so that no later
// update-grub offers a boot that flashes an old image.
func TestHandBackRemovesTheStage2Boot(t *testing.T) {
	for _, noFlash := range []bool{true, false} {
		fx := newHostFixture(t)
		fx.cfg.NoFlash = noFlash
		if !noFlash {
			fx.cfg.ImageSHA256 = strings.Repeat("ab", 32) // refused: a bad image
		}
		root := fx.cfg.RootMnt
		for _, f := range []string{"etc/grub.d/42_balena", "boot/balena-migrate-initramfs-6.1.0-28-amd64", "etc/grub.d/10_linux"} {
			os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
			os.WriteFile(filepath.Join(root, f), []byte("x"), 0o755)
		}
		fx.cfg.CleanupFiles = []string{"/etc/grub.d/42_balena", "/boot/balena-migrate-initramfs-6.1.0-28-amd64", "/boot/not-there"}
		_, out := fx.run(t)
		for _, f := range []string{"etc/grub.d/42_balena", "boot/balena-migrate-initramfs-6.1.0-28-amd64"} {
			if _, err := os.Stat(filepath.Join(root, f)); !os.IsNotExist(err) {
				t.Errorf("NO_FLASH=%v: %s is still there:\n%s", noFlash, f, out)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "etc/grub.d/10_linux")); err != nil {
			t.Errorf("the old system's own grub script went: %v", err)
		}
		if !strings.Contains(out, "removed /etc/grub.d/42_balena, installed by stage 1 for the stage-2 boot") || strings.Contains(out, "WARN: remove") {
			t.Errorf("log:\n%s", out)
		}
	}
}
