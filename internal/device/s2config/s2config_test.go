package s2config

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func sample() Config {
	c := Default()
	c.BootDev = "/dev/vda"
	c.HomeDir = "/home/pi/migrate"
	c.ImageFile = "balena image.img.gz"
	c.ImageSHA256 = sha
	c.BackupFile = "backup.tgz"
	c.BalenaConfig = "config.json"
	c.NetworkConfigs = []string{"resin-wifi-01", "resin-wifi-02", "Wired connection 1.nmconnection", "100% café\twifi.nmconnection"}
	c.RestoreBootFiles = []RestorePair{{"config.txt.bak", "config.txt", strings.Repeat("0a", 32)}, {"cmdline.txt.bak", "cmdline.txt", ""}}
	c.DiskSize, c.DiskTableID, c.RootPartStart = 31914983424, "mbr:1a2b3c4d", 272629760
	c.DiskSerial = "wwid:t10.ATA Samsung SSD 860 EVO 500GB S3Z1NB0K123456X"
	c.OrigBootPart = "/dev/mmcblk0p1"
	c.OrigBootFSType = "vfat"
	c.MountBoot = true
	c.NoFlash = false
	c.TermExit = TermExit{Reboot: true}
	c.MemMinFree = 64 << 20
	c.MaxBadblocks = "1.5%"
	c.GrubInstall = GrubFlash
	c.GrubBootType = BootUEFI
	c.GrubCfg = "grub.cfg"
	c.GrubBootImg = "boot.img"
	c.GrubCoreImg = "core.img"
	c.Watchdog, c.WatchdogModule = 300, "bcm2835_wdt"
	c.RemoveBootFiles = []string{"tryboot.txt", "balena-migrate-cmdline.txt"}
	c.CleanupFiles = []string{"/etc/grub.d/42_balena", "/boot/balena-migrate-initramfs-6.1.0-28-arm64"}
	return c
}

func TestWriteLoadRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stage2.conf")
	want := sample()
	if err := want.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

// The file is also sourced by shell scripts: bash must read the same values.
func TestBashReadsSameValues(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stage2.conf")
	if err := sample().Write(p); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", `. "$1"; printf '%s|%s|%s' "$IMAGE_FILE" "$TERM_EXIT" "$RESTORE_BOOT_FILES"`, "_", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "balena image.img.gz|reboot -f|config.txt.bak:config.txt:" + strings.Repeat("0a", 32) + " cmdline.txt.bak:cmdline.txt"; string(out) != want {
		t.Errorf("bash read %q, want %q", out, want)
	}
}

func TestDefaultsApplyToMissingKeys(t *testing.T) {
	c, err := Parse([]byte("BOOT_DEV=/dev/sda\nHOME_DIR=/root/m\nIMAGE_FILE=i.img.gz\nIMAGE_SHA256=" + strings.ToUpper(sha) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RootMnt != "/root" || c.MigrateTmp != "/balena-migrate" || c.BootMntDir != "/resin-boot" ||
		c.DataMntDir != "/resin-data" || !c.NoFlash || c.TermExit != (TermExit{}) || c.ImageSHA256 != sha {
		t.Errorf("defaults not applied: %+v", c)
	}
	if got := c.HomeFile("backup.tgz"); got != "/root/root/m/backup.tgz" {
		t.Errorf("HomeFile = %q", got)
	}
	if got := c.HomeFile("/opt/x.img.gz"); got != "/root/opt/x.img.gz" {
		t.Errorf("HomeFile abs = %q", got)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	base := "BOOT_DEV=/dev/sda\nHOME_DIR=/m\nIMAGE_FILE=i.gz\nIMAGE_SHA256=" + sha + "\n"
	for _, tc := range []struct{ line, key string }{
		{"TERM_EXIT=shutdown", "TERM_EXIT"},
		{"NO_FLASH=maybe", "NO_FLASH"},
		{"MEM_MIN_FREE=lots", "MEM_MIN_FREE"},
		{"IMAGE_SHA256=abc", "IMAGE_SHA256"},
		{"BOOT_DEV=sda", "BOOT_DEV"},
		{"GRUB_INSTALL=TRUE", "GRUB_INSTALL"},
		{"GRUB_BOOT_TYPE=bios", "GRUB_BOOT_TYPE"},
		{"MAX_BADBLOCKS=x%", "MAX_BADBLOCKS"},
		{"RESTORE_BOOT_FILES=config.txt", "RESTORE_BOOT_FILES"},
		{"MOUNT_BOOT=TRUE", "ORIG_BOOT_PART"},
		{"WATCHDOG=5", "WATCHDOG"},
		{"REMOVE_BOOT_FILES=../etc/passwd", "REMOVE_BOOT_FILES"},
		{"CLEANUP_FILES=etc/grub.d/42_balena", "CLEANUP_FILES"},
		{"REMOVE_BOOT_FILES=tryboot.txt", "ORIG_BOOT_PART"},
		{"WATCHDOG=3601", "WATCHDOG"},
		{"WATCHDOG=soon", "WATCHDOG"},
		{"WATCHDOG_MODULE=../softdog", "WATCHDOG_MODULE"},
	} {
		_, err := Parse([]byte(base + tc.line + "\n"))
		if err == nil || !usage.Is(err) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: err = %v, want a usage error naming %s", tc.line, err, tc.key)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestParseHelpers(t *testing.T) {
	for in, want := range map[string]TermExit{"exit 0": {}, "exit 3": {Code: 3}, "reboot -f": {Reboot: true}, "reboot": {Reboot: true}} {
		if got, err := ParseTermExit(in); err != nil || got != want {
			t.Errorf("ParseTermExit(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseTermExit("exit 300"); err == nil {
		t.Error("exit 300 accepted")
	}
	if n, pct, err := ParseBadblocks("2%"); err != nil || n != 2 || !pct {
		t.Errorf("ParseBadblocks(2%%) = %v %v %v", n, pct, err)
	}
	if len(Keys()) != 34 {
		t.Errorf("Keys() has %d entries", len(Keys()))
	}
}
