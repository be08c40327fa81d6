package stage2_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// The stage-2 boot of an older Raspberry Pi whose old root never shows up
// (a hang in the initramfs before stage 2): the init-top step (stage2
// --early) has put config.txt back first thing, so the watchdog's reset
// that follows boots the old system. Stage 2 itself never runs. (A Pi 4's
// tryboot.txt, read once by the firmware, is removed by the same step.)
func TestVMEarlyRestoreBeforeTheRootAppears(t *testing.T) {
	t.Parallel()
	fx := newVMFixture(t, false)
	orig := []byte("# original\narm_64bit=1\n")
	sum := sha256.Sum256(orig)
	bootDisk := filepath.Join(fx.dir, "boot.img")
	bootFS, err := testimg.Content(fx.dir, 8*testimg.MiB, testimg.Part{FS: "vfat", Label: "boot",
		Files: map[string][]byte{"config.txt": []byte("initramfs balena followkernel\n"), "config.txt.bak": orig,
			"tryboot.txt": []byte("initramfs balena followkernel\n")}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bootDisk, bootFS, 0o644)
	fx.extra = []string{bootDisk}
	fx.cfg.MountBoot, fx.cfg.OrigBootPart, fx.cfg.OrigBootFSType = true, "/dev/vdb", "vfat"
	fx.cfg.RestoreBootFiles = []s2config.RestorePair{{Backup: "config.txt.bak", Original: "config.txt", SHA256: hex.EncodeToString(sum[:])}}
	fx.cfg.RemoveBootFiles = []string{"tryboot.txt", "balena-migrate-cmdline.txt"} // the second was never written
	fx.early, fx.rootDev = true, "/dev/vdz1"                                       // never appears
	res := fx.boot(t)
	if res.ExitCode != 255 || strings.Contains(res.Console, "stage 2 starting") {
		t.Fatalf("exit code %d: the boot was to stop before stage 2\nconsole:\n%s", res.ExitCode, res.Console)
	}
	for _, want := range []string{"putting back the original boot files on /dev/vdb", "restored config.txt from config.txt.bak", "removed tryboot.txt"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q:\n%s", want, res.Console)
		}
	}
	if got, err := testimg.MReadFile(bootDisk, 0, "config.txt"); err != nil || string(got) != string(orig) {
		t.Errorf("config.txt not restored: %q, %v", got, err)
	}
	if _, err := testimg.MReadFile(bootDisk, 0, "tryboot.txt"); err == nil {
		t.Error("tryboot.txt was not removed")
	}
	if strings.Contains(res.Console, "WARN: remove") {
		t.Errorf("a file that was never written made a warning:\n%s", res.Console)
	}
	if h, _ := testimg.SHA256File(fx.disk, -1); h != fx.diskHash {
		t.Error("the disk changed")
	}
}
