package stage1

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"github.com/fleetmig/balena-migrate/internal/device/endpoints"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/usage"

	"golang.org/x/sys/unix"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

func buildStatic(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "balena-migrate")
	staticBinary(t, p)
	return p
}

// bootChecks are what the boot setup must have done on each fixture.
func bootChecks() map[string]func(t *testing.T, d *device, s2 s2config.Config) {
	return map[string]func(t *testing.T, d *device, s2 s2config.Config){
		"pi3-raspbian9": func(t *testing.T, d *device, s2 s2config.Config) {
			cfg := d.read(t, "/boot/config.txt")
			if !strings.HasSuffix(cfg, "\n[all]\ninitramfs balena-migrate-initramfs-4.19.66-v7+ followkernel\n") {
				t.Errorf("config.txt:\n%s", cfg)
			}
			if !strings.HasSuffix(d.read(t, "/boot/config.txt.20261125T120000Z"), "[pi4]\ndtoverlay=vc4-fkms-v3d\n") {
				t.Error("backup of config.txt is not the original")
			}
			if !strings.HasSuffix(d.read(t, "/boot/cmdline.txt"), " rootwait debug\n") {
				t.Errorf("cmdline.txt lacks debug: %q", d.read(t, "/boot/cmdline.txt"))
			}
			if got := d.read(t, "/boot/cmdline.txt.20261125T120000Z"); strings.Contains(got, "debug") {
				t.Errorf("backup of cmdline.txt is not the original: %q", got)
			}
			wantRestore(t, s2, "config.txt.20261125T120000Z:config.txt cmdline.txt.20261125T120000Z:cmdline.txt", "/dev/mmcblk0p1", "vfat")
			if s2.BootDev != "/dev/mmcblk0" {
				t.Errorf("BOOT_DEV %q", s2.BootDev)
			}
			mustExist(t, d, "/boot/balena-migrate-initramfs-4.19.66-v7+")
		},
		"pi4-rpios12": func(t *testing.T, d *device, s2 s2config.Config) {
			// tryboot: config.txt and cmdline.txt untouched, tryboot.txt is
			// config.txt with the initramfs and a command line file of its own
			wantTryboot(t, d, "6.6.51+rpt-rpi-v8", s2)
			if _, err := os.Stat(d.path("/boot/config.txt")); err == nil {
				t.Error("wrote /boot/config.txt on a /boot/firmware system")
			}
			// Raspberry Pi OS 12's NetworkManager connections, wired and
			// Wi-Fi, go over as their own files.
			if strings.Join(s2.NetworkConfigs, " ") != "resin-ethernet-01 resin-wifi-01" || !strings.Contains(d.read(t, "/home/pi/migrate/resin-wifi-01"), "ssid=home-net\n") ||
				d.read(t, "/home/pi/migrate/resin-ethernet-01") != d.read(t, "/etc/NetworkManager/system-connections/Wired.nmconnection") {
				t.Errorf("NetworkManager connections not migrated: %q", s2.NetworkConfigs)
			}
		},
		"ubuntu1804-bios": func(t *testing.T, d *device, s2 s2config.Config) {
			entry := d.read(t, "/etc/grub.d/42_balena")
			for _, want := range []string{
				"search --no-floppy --fs-uuid --set=root 0b8fb1b6-2d1c-4c5e-a1b2-3c4d5e6f7a8b",
				"linux /boot/vmlinuz-4.15.0-20-generic root=UUID=0b8fb1b6-2d1c-4c5e-a1b2-3c4d5e6f7a8b ro quiet splash debug\n",
				"initrd /boot/balena-migrate-initramfs-4.15.0-20-generic\n",
			} {
				if !strings.Contains(entry, want) {
					t.Errorf("42_balena lacks %q:\n%s", want, entry)
				}
			}
			if !strings.Contains(d.read(t, "/boot/grub/grubenv"), "next_entry=balena-migrate\n") {
				t.Error("grub-reboot was not run")
			}
			if s2.BootDev != "/dev/sda" || s2.GrubBootType != s2config.BootLegacy || len(s2.RestoreBootFiles) != 0 {
				t.Errorf("stage-2 config %+v", s2)
			}
			// a stage 2 that hands back removes the script and the initramfs,
			// and the record and unit that would remove them otherwise
			const leftovers = "/etc/grub.d/42_balena /boot/balena-migrate-initramfs-4.15.0-20-generic " +
				"/etc/systemd/system/multi-user.target.wants/balena-migrate-cleanup.service /etc/systemd/system/balena-migrate-cleanup.service /etc/balena-migrate-cleanup"
			if got := strings.Join(s2.CleanupFiles, " "); got != leftovers {
				t.Errorf("CLEANUP_FILES %q", got)
			}
			// the old system's next boot removes them when stage 2 never ran
			id, removed, err := parseCleanupScript([]byte(d.read(t, cleanupRecord)))
			if err != nil || id != testBootID || strings.Join(removed, " ") != leftovers {
				t.Errorf("%s: boot %q, removes %q (%v)", cleanupRecord, id, removed, err)
			}
			if unit := d.read(t, cleanupUnit); !strings.Contains(unit, "ExecStart=/bin/sh "+cleanupRecord+"\n") {
				t.Errorf("%s:\n%s", cleanupUnit, unit)
			}
			if l, err := os.Readlink(d.path(cleanupWants)); err != nil || l != "../balena-migrate-cleanup.service" {
				t.Errorf("%s is not enabled: %q %v", cleanupUnit, l, err)
			}
			hook := d.read(t, "/home/admin/migrate/initramfs-tools/balena-migrate-hook.conf")
			if !strings.Contains(hook, `BALENA_MIGRATE_MODULES="vfat fat nls_cp437 nls_iso8859_1 nls_ascii ext4 ahci iTCO_wdt"`) {
				t.Errorf("the disk and watchdog driver modules are not in the initramfs: %s", hook)
			}
		},
		"ubuntu1804-uefi": func(t *testing.T, d *device, s2 s2config.Config) {
			entry := d.read(t, "/etc/grub.d/42_balena")
			if !strings.Contains(entry, "linux /vmlinuz-4.15.0-20-generic root=UUID=") || !strings.Contains(entry, "initrd /balena-migrate-initramfs-4.15.0-20-generic\n") {
				t.Errorf("paths must be relative to the separate /boot partition:\n%s", entry)
			}
			if s2.BootDev != "/dev/nvme0n1" || s2.GrubBootType != s2config.BootUEFI {
				t.Errorf("stage-2 config %+v", s2)
			}
			// /boot is a partition of its own: only grub's script is on /;
			// no systemd: the record alone (stage 1's next run reads it)
			if got := strings.Join(s2.CleanupFiles, " "); got != "/etc/grub.d/42_balena /etc/balena-migrate-cleanup" {
				t.Errorf("CLEANUP_FILES %q", got)
			}
		},
		"ubuntu2404-uefi": func(t *testing.T, d *device, s2 s2config.Config) {
			entry := d.read(t, "/etc/grub.d/42_balena")
			for _, want := range []string{
				"linux /boot/vmlinuz-6.8.0-85-generic root=UUID=6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f ro quiet splash vt.handoff=7 debug\n",
				"initrd /boot/balena-migrate-initramfs-6.8.0-85-generic\n",
			} {
				if !strings.Contains(entry, want) {
					t.Errorf("42_balena lacks %q:\n%s", want, entry)
				}
			}
			if s2.BootDev != "/dev/nvme0n1" || s2.GrubBootType != s2config.BootUEFI {
				t.Errorf("stage-2 config %+v", s2)
			}
			if !strings.Contains(d.log.String(), "system: Ubuntu 24.04.3 LTS on UEFI PC (x86_64)") ||
				!strings.Contains(d.log.String(), "is for generic-amd64, which boots on this UEFI PC") {
				t.Errorf("log does not name the system and image type:\n%s", d.log.String())
			}
			if !strings.Contains(d.read(t, "/home/admin/migrate/resin-wifi-01"), "ssid=office-net\n") {
				t.Error("NetworkManager wifi not migrated")
			}
		},
		"rpios13-pi5": func(t *testing.T, d *device, s2 s2config.Config) {
			wantTryboot(t, d, "6.12.47+rpt-rpi-2712", s2)
			if s2.BootDev != "/dev/mmcblk0" || !strings.Contains(d.log.String(), "system: Debian GNU/Linux 13 (trixie) on Raspberry Pi 5 (aarch64)") {
				t.Errorf("BOOT_DEV %q; log:\n%s", s2.BootDev, d.log.String())
			}
		},
		"raspbian12-pi3": func(t *testing.T, d *device, s2 s2config.Config) {
			cfg := d.read(t, "/boot/firmware/config.txt")
			if !strings.HasSuffix(cfg, "[all]\ninitramfs balena-migrate-initramfs-6.6.51+rpt-rpi-v7 followkernel\n") {
				t.Errorf("config.txt:\n%s", cfg)
			}
			if !strings.HasSuffix(d.read(t, "/boot/firmware/cmdline.txt"), " debug\n") {
				t.Error("cmdline.txt lacks debug")
			}
			wantRestore(t, s2, "config.txt.20261125T120000Z:config.txt cmdline.txt.20261125T120000Z:cmdline.txt", "/dev/mmcblk0p1", "vfat")
			if !strings.Contains(d.log.String(), "system: Raspbian GNU/Linux 12 (bookworm) on Raspberry Pi 3 Model B (armv7l)") {
				t.Errorf("log:\n%s", d.log.String())
			}
		},
		"ubuntu2204-vm": func(t *testing.T, d *device, s2 s2config.Config) {
			entry := d.read(t, "/etc/grub.d/42_balena")
			if !strings.Contains(entry, "linux /boot/vmlinuz-5.15.0-160-generic root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0 debug\n") {
				t.Errorf("42_balena:\n%s", entry)
			}
			if s2.BootDev != "/dev/vda" || s2.GrubBootType != s2config.BootLegacy {
				t.Errorf("stage-2 config %+v", s2)
			}
			hook := d.read(t, "/home/admin/migrate/initramfs-tools/balena-migrate-hook.conf")
			if !strings.Contains(hook, "virtio_blk virtio_pci") {
				t.Errorf("the virtio disk driver is not in the initramfs: %s", hook)
			}
			if !strings.Contains(d.log.String(), "system: Ubuntu 22.04.5 LTS on BIOS PC (x86_64)") {
				t.Errorf("log:\n%s", d.log.String())
			}
		},
		"debian12-arm64-uefi": func(t *testing.T, d *device, s2 s2config.Config) {
			entry := d.read(t, "/etc/grub.d/42_balena")
			if !strings.Contains(entry, "linux /boot/vmlinuz-6.1.0-28-arm64 root=UUID=6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f ro quiet debug\n") {
				t.Errorf("42_balena:\n%s", entry)
			}
			if s2.BootDev != "/dev/nvme0n1" || s2.GrubBootType != s2config.BootUEFI {
				t.Errorf("stage-2 config %+v", s2)
			}
			if !strings.Contains(d.log.String(), "system: Debian GNU/Linux 12 (bookworm) on UEFI ARM machine (aarch64)") ||
				!strings.Contains(d.log.String(), "is for generic-aarch64, which boots on this UEFI ARM machine") {
				t.Errorf("log:\n%s", d.log.String())
			}
			// stage 2 writes the flashed disk's UEFI boot entry through efivarfs
			if hook := d.read(t, "/home/admin/migrate/initramfs-tools/balena-migrate-hook.conf"); !strings.Contains(hook, " efivarfs\"") {
				t.Errorf("efivarfs is not in the initramfs: %s", hook)
			}
		},
		"bbg-debian9": func(t *testing.T, d *device, s2 s2config.Config) {
			if got := d.read(t, "/boot/initrd.img-4.14.71-ti-r80"); got != d.read(t, "/home/debian/migrate/balena-migrate-initramfs-4.14.71-ti-r80") {
				t.Errorf("initrd.img was not replaced by ours: %q", got)
			}
			if d.read(t, "/boot/initrd.img-4.14.71-ti-r80.20261125T120000Z") != "original initrd\n" {
				t.Error("no backup of the original initrd")
			}
			if !strings.Contains(d.read(t, "/boot/uEnv.txt"), "cmdline=coherent_pool=1M net.ifnames=0 quiet debug\n") {
				t.Errorf("uEnv.txt: %s", d.read(t, "/boot/uEnv.txt"))
			}
			// /boot is on the root filesystem: restored under ROOT_MNT, not mounted again
			wantRestoreMount(t, s2, "boot/uEnv.txt.20261125T120000Z:boot/uEnv.txt boot/initrd.img-4.14.71-ti-r80.20261125T120000Z:boot/initrd.img-4.14.71-ti-r80", "/dev/mmcblk1p1", "ext4", false)
			if !strings.Contains(d.read(t, "/home/debian/migrate/resin-wifi-01"), "psk=lab-pass-123\n") {
				t.Error("connman wifi not migrated")
			}
		},
	}
}

func TestFixturesBootSetup(t *testing.T) {
	static := buildStatic(t)
	checks := bootChecks()
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			d := newDevice(t, f, static)
			d.cfg.NoSetup, d.cfg.Debug, d.cfg.Reboot = false, true, 10
			d.cfg.MinWriteSpeed = 1 // measured, and any disk passes
			res, err := d.run()
			if err != nil {
				t.Fatalf("%v\n%s", err, d.log.String())
			}
			tryboot := f.name == "pi4-rpios12" || f.name == "rpios13-pi5"
			reboot, arg := "reboot", ""
			if tryboot {
				reboot, arg = `reboot "0 tryboot"`, "0 tryboot"
			}
			if !res.SetupDone || res.RebootIn != 10 || res.Reboot != reboot || res.RebootArg != arg {
				t.Fatalf("result %+v, want reboot command %q, argument %q", res, reboot, arg)
			}
			s2 := loadS2(t, d)
			if s2.ImageSHA256 != d.imgSum || s2.ImageFile != filepath.Join(f.home, f.image) || s2.HomeDir != f.home || s2.BackupFile != "backup.tgz" || !s2.NoFlash {
				t.Errorf("stage-2 config %+v", s2)
			}
			checks[f.name](t, d, s2)
			// The running system's watchdog driver, or softdog where it has none.
			wantModule := map[string]string{"ubuntu1804-bios": "iTCO_wdt", "pi4-rpios12": ""}
			mod, ok := wantModule[f.name]
			if !ok {
				mod = "softdog"
			}
			if s2.Watchdog != 300 || s2.WatchdogModule != mod {
				t.Errorf("WATCHDOG=%d WATCHDOG_MODULE=%q, want 300 and %q", s2.Watchdog, s2.WatchdogModule, mod)
			}
			for _, line := range strings.Split(strings.TrimSpace(d.log.String()), "\n") {
				if !strings.HasPrefix(line, "[2026-11-25T12:00:00Z balena-migrate] INFO: ") {
					t.Errorf("log line %q", line)
				}
			}
			// A second run: grub machines and Pis with tryboot set up again; boards
			// whose backups would now hold our change refuse.
			_, err = d.run()
			if again := f.machine == "x86_64" || strings.HasSuffix(f.name, "-uefi") || tryboot; again != (err == nil) || !again && !errors.Is(err, ErrBootSetup) {
				t.Errorf("second run: %v", err)
			}
		})
	}
}

// wantTryboot checks the boot setup of a Pi with tryboot: the original
// config.txt and cmdline.txt (fixture content), tryboot.txt made from
// config.txt, DEBUG on a command line file of its own, nothing to restore.
func wantTryboot(t *testing.T, d *device, release string, s2 s2config.Config) {
	t.Helper()
	for _, f := range []string{"config.txt", "cmdline.txt"} {
		if got, orig := d.read(t, "/boot/firmware/"+f), string(mustRead(t, filepath.Join("testdata", d.name, "boot/firmware", f))); got != orig {
			t.Errorf("%s changed:\n%s", f, got)
		}
		if _, err := os.Stat(d.path("/boot/firmware/" + f + ".20261125T120000Z")); err == nil {
			t.Errorf("%s backed up although it is not changed", f)
		}
	}
	orig := string(mustRead(t, filepath.Join("testdata", d.name, "boot/firmware/config.txt")))
	want := piConfig(orig, "initramfs balena-migrate-initramfs-"+release+" followkernel", "cmdline=balena-migrate-cmdline.txt")
	if got := d.read(t, "/boot/firmware/tryboot.txt"); got != want || !strings.Contains(got, "#balena-migrate# auto_initramfs=1\n") {
		t.Errorf("tryboot.txt:\n%s\nwant:\n%s", got, want)
	}
	cmdline := string(mustRead(t, filepath.Join("testdata", d.name, "boot/firmware/cmdline.txt")))
	if got := d.read(t, "/boot/firmware/balena-migrate-cmdline.txt"); got != strings.TrimSpace(cmdline)+" debug\n" {
		t.Errorf("balena-migrate-cmdline.txt: %q", got)
	}
	mustExist(t, d, "/boot/firmware/balena-migrate-initramfs-"+release)
	if len(s2.RestoreBootFiles) != 0 {
		t.Errorf("stage 2 would restore %v: nothing was changed", s2.RestoreBootFiles)
	}
	// the stage-2 boot removes what the firmware read once
	if got := strings.Join(s2.RemoveBootFiles, " "); got != "tryboot.txt balena-migrate-cmdline.txt" || s2.OrigBootPart != "/dev/mmcblk0p1" || s2.OrigBootFSType != "vfat" {
		t.Errorf("REMOVE_BOOT_FILES %q on %s (%s)", got, s2.OrigBootPart, s2.OrigBootFSType)
	}
	if !strings.Contains(d.log.String(), "only a `reboot \"0 tryboot\"` boots stage 2") {
		t.Errorf("log:\n%s", d.log.String())
	}
}

func wantRestore(t *testing.T, s2 s2config.Config, pairs, part, fstype string) {
	wantRestoreMount(t, s2, pairs, part, fstype, true)
}

func wantRestoreMount(t *testing.T, s2 s2config.Config, pairs, part, fstype string, mount bool) {
	t.Helper()
	var got []string
	for _, p := range s2.RestoreBootFiles {
		got = append(got, p.Backup+":"+p.Original)
	}
	if strings.Join(got, " ") != pairs || s2.OrigBootPart != part || s2.OrigBootFSType != fstype || s2.MountBoot != mount {
		t.Errorf("restore %q on %s (%s, mount %t), want %q on %s (%s)", got, s2.OrigBootPart, s2.OrigBootFSType, s2.MountBoot, pairs, part, fstype)
	}
}

func mustExist(t *testing.T, d *device, p string) {
	t.Helper()
	if _, err := os.Stat(d.path(p)); err != nil {
		t.Error(err)
	}
}

func TestPretendLeavesBootAlone(t *testing.T) {
	static := buildStatic(t)
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			d := newDevice(t, f, static)
			d.cfg.NoSetup = true
			c := &chroot{t: t, dir: d.host.root}
			before := c.snapshot("/boot")
			res, err := d.run()
			if err != nil || res.SetupDone || res.RebootIn != -1 {
				t.Fatalf("%+v %v\n%s", res, err, d.log.String())
			}
			if diff := diffSnapshots(before, c.snapshot("/boot")); len(diff) > 0 {
				t.Fatalf("pretend changed /boot: %v", diff)
			}
			for _, r := range d.host.ran {
				if strings.Contains(r, "grub") {
					t.Errorf("pretend ran %s", r)
				}
			}
			mustExist(t, d, filepath.Join(f.home, initramfsName(f.release)))
			mustExist(t, d, s2config.DefaultPath)
			// a second run replaces the outputs of the first
			if _, err := d.run(); err != nil {
				t.Fatalf("second run: %v", err)
			}
			if old, _ := filepath.Glob(d.path(f.home + "/*.balena-migrate-old")); len(old) > 0 {
				t.Errorf("left over: %v", old)
			}
		})
	}
}

type refusal struct {
	name   string
	fix    fixture
	setup  func(d *device)
	target error
	words  string
	class  devproto.Class // the verdict's class
}

// refusals are the ways stage 1 must say no; each case breaks one thing.
func refusals() []refusal {
	pc, pi := fixtures[2], fixtures[0]
	self, _ := os.Executable()
	return []refusal{
		{"not root", pc, func(d *device) { d.host.uid = 1000 }, ErrNotRoot, "must run as root", devproto.ClassStage1},
		{"old OS", pc, func(d *device) {
			d.write("/etc/os-release", []byte("ID=ubuntu\nVERSION_ID=\"12.04\"\n"))
		}, ErrOS, "ubuntu 12.04", devproto.ClassOS},
		{"balenaOS already", pi, func(d *device) {
			d.write("/etc/os-release", []byte("ID=balena-os\nNAME=balenaOS\nVERSION_ID=2.80.3\nPRETTY_NAME=\"balenaOS 2.80.3\"\n"))
		}, ErrAlreadyBalena, "needs no migration", devproto.ClassAlreadyBalena},
		{"unknown board", pi, func(d *device) {
			d.write("/proc/device-tree/model", []byte("Pine64 RockPro64\x00"))
			d.write("/proc/cpuinfo", []byte("processor : 0\n"))
		}, ErrDeviceType, "RockPro64", devproto.ClassDeviceType},
		{"unknown board without the proc link", pi, func(d *device) {
			os.RemoveAll(d.path("/proc/device-tree"))
			d.write("/sys/firmware/devicetree/base/model", []byte("Pine64 RockPro64\x00"))
			d.write("/proc/cpuinfo", []byte("processor : 0\n"))
		}, ErrDeviceType, "RockPro64", devproto.ClassDeviceType},
		{"boot on another disk", pc, func(d *device) {
			d.write("/proc/self/mountinfo", []byte("25 0 8:1 / / rw - ext4 /dev/sda1 rw\n26 25 8:17 / /boot rw - ext4 /dev/sdb1 rw\n"))
			os.MkdirAll(d.path("/sys/devices/virtual/block/sdb/sdb1"), 0o755)
			os.WriteFile(d.path("/sys/devices/virtual/block/sdb/sdb1/partition"), []byte("1\n"), 0o644)
			os.Symlink("../../devices/virtual/block/sdb/sdb1", d.path("/sys/dev/block/8:17"))
		}, ErrBootLayout, "/boot is on /dev/sdb", devproto.ClassStage1},
		{"root on LVM", pc, func(d *device) {
			d.write("/proc/self/mountinfo", []byte("25 0 254:0 / / rw - ext4 /dev/mapper/vg-root rw\n"))
			d.write("/sys/devices/virtual/block/dm-0/slaves/sda2", nil)
			os.Symlink("../../devices/virtual/block/dm-0", d.path("/sys/dev/block/254:0"))
		}, ErrBootLayout, "device-mapper", devproto.ClassStage1},
		{"disk unreadable", pc, func(d *device) { os.Remove(d.path("/dev/sda")) }, ErrBootLayout, "cannot record the identity of /dev/sda", devproto.ClassStage1},
		{"grub-reboot missing", pc, func(d *device) { os.Remove(d.path("/usr/sbin/grub-reboot")) }, ErrMissingProg, "grub-reboot", devproto.ClassStage1},
		{"no kernel modules", pc, func(d *device) { os.RemoveAll(d.path("/lib/modules")) }, ErrUnsupported, "/lib/modules/4.15.0-20-generic", devproto.ClassStage1},
		{"dynamic binary", pc, func(d *device) {
			if !isDynamic(self) {
				d.t().Skip("the test binary is static here")
			}
			d.write(filepath.Join(d.home, "balena-migrate"), mustRead(d.t(), self))
		}, ErrInitramfs, "dynamically linked", devproto.ClassStage1},
		{"no space", pc, func(d *device) { d.host.free = 10 << 20 }, errNoSpace, "not enough space", devproto.ClassNoSpace},
		{"slow disk", pc, func(d *device) { d.cfg.MinWriteSpeed = 1 << 40 }, ErrSlowDisk, "below MIN_WRITE_SPEED", devproto.ClassStage1},
		{"checksum", pc, func(d *device) {
			d.write(filepath.Join(d.home, "checksums.md5"), []byte("00000000000000000000000000000000  "+d.image+"\n"))
		}, ErrChecksum, "damaged in transfer", devproto.ClassStage1},
		{"API unreachable", pc, func(d *device) { d.host.unreachable = map[endpoints.Kind]bool{endpoints.API: true} }, ErrNetwork, "the balena API at https://api.example:443/ping does not answer", devproto.ClassNetwork},
		{"default route through an uncovered link", pc, func(d *device) {
			d.host.live.Links[0].Addrs[0].Dynamic = false
		}, ErrNetwork, "eth0 carries the default route and the SSH session but its address 192.168.1.20/24 is set by nothing balena-migrate reads", devproto.ClassNetwork},
		{"a setup that cannot be carried", pc, func(d *device) {
			d.write("/sbin/ifup", nil)
			d.write("/etc/network/interfaces", []byte("auto br0\niface br0 inet dhcp\n\tbridge_ports eth1\n"))
		}, ErrNetwork, "/etc/network/interfaces:2: iface br0 is a bridge (bridge_ports), which is not carried: give a NetworkManager file for it in COPY_NMGR_FILES (NETWORK_SKIP=br0 leaves it behind)", devproto.ClassNetwork},
		{"log drive on the boot disk", pc, func(d *device) {
			d.cfg.LogDrive = "/dev/sda2"
			if err := unixMknodBlock(d.path("/dev/sda2")); err != nil {
				d.t().Skip(err)
			}
		}, usage.Err, "the disk that gets flashed", devproto.ClassConfigError},
		{"log drive missing", pc, func(d *device) { d.cfg.LogDrive = "/dev/sdb1" }, usage.Err, "not a block device", devproto.ClassConfigError},
		{"grub.cfg missing", pc, func(d *device) {
			d.cfg.GrubInstall, d.cfg.GrubCfg = true, filepath.Join(d.home, "grub.cfg")
			d.cfg.GrubBootImg, d.cfg.GrubCoreImg = filepath.Join(d.home, "boot.img"), filepath.Join(d.home, "core.img")
		}, usage.Err, "GRUB_CFG", devproto.ClassConfigError},
		// stage 2 has no grub-install: a BIOS machine needs boot.img and core.img
		{"grub-install needed", pc, func(d *device) {
			d.cfg.GrubInstall, d.cfg.GrubCfg = true, filepath.Join(d.home, "grub.cfg")
			d.write(d.cfg.GrubCfg, []byte("menuentry x {}\n"))
		}, usage.Err, "needs GRUB_BOOT_IMG and GRUB_CORE_IMG", devproto.ClassConfigError},
		{"core.img larger than the MBR gap", pc, func(d *device) {
			grubFiles(d, 1<<20)
		}, usage.Err, "leaves 1048064 bytes between the MBR and its first partition", devproto.ClassConfigError},
		{"core.img over a GPT", pc, func(d *device) {
			grubFiles(d, 30000)
			raw, _ := genericAMD64(d.t()) // a real GPT: stage 1 checks its checksums first
			d.write(d.cfg.ImageName, gz(raw))
		}, usage.Err, "GPT image and core.img would overwrite its partition table", devproto.ClassConfigError},
		{"badblocks missing", pc, func(d *device) {
			d.cfg.MaxBadblocks = "0"
			os.Remove(d.path("/usr/sbin/badblocks"))
		}, ErrMissingProg, "badblocks", devproto.ClassStage1},
		{"badblocks not in the initramfs", pc, func(d *device) {
			d.cfg.MaxBadblocks = "0"
			d.host.omit = "badblocks"
		}, ErrInitramfs, "lacks program badblocks", devproto.ClassStage1},
		{"module not in the initramfs", pc, func(d *device) { d.host.omit = "nls_cp437" }, ErrInitramfs, "lacks module nls_cp437", devproto.ClassStage1},
		{"binary not in the initramfs", pc, func(d *device) { d.host.omit = "bin/balena-migrate" }, ErrInitramfs, "lacks bin/balena-migrate", devproto.ClassStage1},
		{"missing image", pc, func(d *device) { os.Remove(d.path(d.cfg.ImageName)) }, ErrImage, "no such file", devproto.ClassStage1},
		{"wrong device", pi, func(d *device) {
			d.cfg.ImageName = filepath.Join(d.home, "resin-raspberrypi4-64-2.80.img.gz")
			d.write(d.cfg.ImageName, mustRead(d.t(), d.path(filepath.Join(d.home, d.image))))
		}, ErrWrongDevice, "for raspberrypi4-64 but this device is a Raspberry Pi 3 Model B", devproto.ClassDeviceType},
		{"untagged, config.json for another device", pi, func(d *device) {
			d.cfg.ImageName = filepath.Join(d.home, "balenaos.img.gz")
			d.write(d.cfg.ImageName, mustRead(d.t(), d.path(filepath.Join(d.home, d.image))))
			d.cfg.BalenaConfig = filepath.Join(d.home, "config.json")
			d.write(d.cfg.BalenaConfig, []byte(`{"deviceType":"genericx86-64","wifiSsid":"x"}`))
		}, ErrWrongDevice, "for genericx86-64", devproto.ClassDeviceType},
		{"untagged, no config.json", pi, func(d *device) {
			d.cfg.ImageName = filepath.Join(d.home, "balenaos.img.gz")
			d.write(d.cfg.ImageName, mustRead(d.t(), d.path(filepath.Join(d.home, d.image))))
		}, ErrUnknownTarget, "no device-type tag", devproto.ClassDeviceType},
		{"not a disk image", pc, func(d *device) { d.write(d.cfg.ImageName, gz([]byte(strings.Repeat("not a disk ", 100)))) }, ErrImage, "boot sector", devproto.ClassStage1},
		{"truncated gzip", pc, func(d *device) {
			data := mustRead(d.t(), d.path(d.cfg.ImageName))
			d.write(d.cfg.ImageName, data[:len(data)-100])
		}, ErrImage, "damaged", devproto.ClassStage1},
		{"damaged zip", pi, func(d *device) {
			d.cfg.ImageName = filepath.Join(d.home, "balena-raspberrypi3-2.50.img.zip")
			d.write(d.cfg.ImageName, []byte("PK\x03\x04 this is not really a zip"))
		}, ErrImage, "not a readable zip", devproto.ClassStage1},
		{"no network config", pc, func(d *device) { d.cfg.RequireNmgrFile = true }, ErrNoNetworkConfig, "REQUIRE_NMGR_FILE", devproto.ClassStage1},
		{"backup script fails", pc, func(d *device) {
			d.cfg.BackupScript = filepath.Join(d.home, "backup.sh")
			d.write(d.cfg.BackupScript, []byte("#!/bin/sh\nexit 1\n"))
			os.Chmod(d.path(d.cfg.BackupScript), 0o755)
			d.host.fail = map[string]error{"backup.sh": errors.New("exit status 1")}
		}, ErrBackup, "backup", devproto.ClassBackup},
		{"mkinitramfs fails", pc, func(d *device) {
			d.host.fail = map[string]error{"mkinitramfs": errors.New("No space left on device")}
		}, ErrInitramfs, "mkinitramfs", devproto.ClassStage1},
		{"not enough memory", pc, func(d *device) { d.cfg.MemMinFreeS1 = 4 << 30 }, errNoSpace, "not enough memory", devproto.ClassNoSpace},
		{"update-grub fails", pc, func(d *device) { d.host.fail = map[string]error{"update-grub": errors.New("exit status 1")} }, ErrBootSetup, "update-grub", devproto.ClassStage1},
		{"grub-reboot fails", fixtures[3], func(d *device) { d.host.fail = map[string]error{"grub-reboot": errors.New("exit status 1")} }, ErrBootSetup, "grub-reboot", devproto.ClassStage1},
		{"Pi set up by an earlier run", pi, func(d *device) {
			cfg := mustRead(d.t(), d.path("/boot/config.txt"))
			d.write("/boot/config.txt", append(cfg, "[all]\ninitramfs balena-migrate-initramfs-4.19.66-v7+ followkernel\n"...))
		}, ErrBootSetup, "already boots balena-migrate-initramfs-4.19.66-v7+", devproto.ClassStage1},
		{"BeagleBone set up by an earlier run", fixtures[4], func(d *device) {
			d.write("/boot/initrd.img-4.14.71-ti-r80", []byte("ours"))
			d.write(filepath.Join(d.home, "balena-migrate-initramfs-4.14.71-ti-r80"), []byte("ours"))
		}, ErrBootSetup, "initramfs of an earlier run", devproto.ClassStage1},
		{"no cmdline.txt", pi, func(d *device) { os.Remove(d.path("/boot/cmdline.txt")) }, ErrBootSetup, "cmdline.txt is missing", devproto.ClassStage1},
		{"initrd missing on BeagleBone", fixtures[4], func(d *device) { os.Remove(d.path("/boot/initrd.img-4.14.71-ti-r80")) }, ErrBootSetup, "initrd.img-4.14.71-ti-r80 is missing", devproto.ClassStage1},
	}
}

// Every refusal leaves the device exactly as it was.
func TestRefusalsChangeNothing(t *testing.T) {
	static := buildStatic(t)
	for _, tc := range refusals() {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, tc.fix, static)
			d.host.t = t
			d.cfg.NoSetup = false
			d.cfg.MigrateAllWifis = true
			tc.setup(d)
			before := d.tree(t)
			_, err := d.run()
			if err == nil || !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("want %v with %q, got %v\n%s", tc.target, tc.words, err, d.log.String())
			}
			if got := ClassOf(err); got != tc.class {
				t.Errorf("class %s, want %s (%v)", got, tc.class, err)
			}
			if diff := diffSnapshots(before, d.tree(t)); len(diff) > 0 {
				t.Fatalf("refusal changed the device:\n%s\n%s", strings.Join(diff, "\n"), d.log.String())
			}
		})
	}
}

func (d *device) t() *testing.T { return d.host.t }

// unixMknodBlock makes a block device node (root only).
func unixMknodBlock(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(8, 2)))
}

func isDynamic(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, pr := range f.Progs {
		if pr.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// grubFiles sets up GRUB_INSTALL=TRUE with boot.img and a core.img of coreSize bytes.
func grubFiles(d *device, coreSize int) {
	d.cfg.GrubInstall = true
	d.cfg.GrubCfg, d.cfg.GrubBootImg, d.cfg.GrubCoreImg = filepath.Join(d.home, "grub.cfg"), filepath.Join(d.home, "boot.img"), filepath.Join(d.home, "core.img")
	d.write(d.cfg.GrubCfg, []byte("menuentry x {}\n"))
	d.write(d.cfg.GrubBootImg, make([]byte, 512))
	d.write(d.cfg.GrubCoreImg, make([]byte, coreSize))
}

// gptImage is a 4 MiB disk image with a protective MBR and a GPT header.
func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func TestZipImageIsRepacked(t *testing.T) {
	d := newDevice(t, fixtures[0], buildStatic(t))
	d.cfg.NoSetup = true
	raw := gunzip(t, mustRead(t, d.path(d.cfg.ImageName)))
	d.cfg.ImageName = filepath.Join(d.home, "download.zip")
	d.write(d.cfg.ImageName, zipImage(t, raw, "balena-cloud-fleet-raspberrypi3-2.50.1+rev1-v11.4.10.img"))
	if _, err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	gzPath := filepath.Join(d.home, "balena-cloud-fleet-raspberrypi3-2.50.1+rev1-v11.4.10.img.gz")
	if got := gunzip(t, mustRead(t, d.path(gzPath))); !bytes.Equal(got, raw) {
		t.Fatal("the repacked gzip does not hold the zip's image")
	}
	if s2 := loadS2(t, d); s2.ImageFile != gzPath || s2.ImageSHA256 != d.imgSum {
		t.Fatalf("stage 2 gets %s %s", s2.ImageFile, s2.ImageSHA256)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestWifiMigration(t *testing.T) {
	static := buildStatic(t)
	cases := []struct {
		name   string
		setup  func(d *device)
		expect map[string]string // file → ssid line
	}{
		{"all", func(d *device) {}, map[string]string{"resin-wifi-01": "ssid=office", "resin-wifi-02": "ssid=cafe wif", "resin-wifi-03": "ssid=guest"}},
		{"not asked for", func(d *device) { d.cfg.MigrateAllWifis = false }, map[string]string{}},
		{"filtered, after the image's own", func(d *device) {
			d.cfg.MigrateAllWifis, d.cfg.HasWifiCfg = false, 1
			d.cfg.MigrateWifiCfg = filepath.Join(d.home, "wifis")
			d.write(d.cfg.MigrateWifiCfg, []byte("guest\n"))
		}, map[string]string{"resin-wifi-02": "ssid=guest"}},
		{"config.json first", func(d *device) {
			d.cfg.BalenaConfig = filepath.Join(d.home, "config.json")
			d.write(d.cfg.BalenaConfig, []byte(`{"deviceType":"raspberrypi3","wifiSsid":"office","wifiKey":"from-config"}`))
		}, map[string]string{"resin-wifi-01": "psk=from-config", "resin-wifi-02": "ssid=cafe wif", "resin-wifi-03": "ssid=guest"}},
		{"copied as is", func(d *device) {
			d.cfg.MigrateAllWifis = false
			d.cfg.CopyNmgrFiles = []string{"/etc/my-eth"}
			d.write("/etc/my-eth", []byte("[connection]\nid=my-eth\n"))
		}, map[string]string{"my-eth": "id=my-eth"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, fixtures[0], static)
			d.cfg.NoSetup = true
			tc.setup(d)
			if _, err := d.run(); err != nil {
				t.Fatalf("%v\n%s", err, d.log.String())
			}
			s2 := loadS2(t, d)
			if len(s2.NetworkConfigs) != len(tc.expect) {
				t.Fatalf("NETWORK_CONFIGS %q, want %d files", s2.NetworkConfigs, len(tc.expect))
			}
			for _, name := range s2.NetworkConfigs {
				want, ok := tc.expect[name]
				if content := d.read(t, filepath.Join(d.home, name)); !ok || !strings.Contains(content, want+"\n") {
					t.Errorf("%s: want %q in\n%s", name, want, content)
				}
			}
		})
	}
}

func TestWrongZipIsRefusedBeforeRepacking(t *testing.T) {
	d := newDevice(t, fixtures[0], buildStatic(t))
	raw := gunzip(t, mustRead(t, d.path(d.cfg.ImageName)))
	d.cfg.ImageName = filepath.Join(d.home, "balena-cloud-x-raspberrypi5-6.0.img.zip")
	d.write(d.cfg.ImageName, zipImage(t, raw, "balena-cloud-x-raspberrypi5-6.0.img"))
	_, err := d.run()
	if !errors.Is(err, ErrWrongDevice) || strings.Contains(d.log.String(), "repacking") {
		t.Fatalf("want ErrWrongDevice before repacking, got %v\n%s", err, d.log.String())
	}
}

// cancelOn cancels when a log line containing words is written.
type cancelOn struct {
	w      io.Writer
	words  string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.words) {
		c.cancel()
	}
	return c.w.Write(p)
}

// A stop that arrives once everything is prepared, just before the boot
// setup, undoes every change and leaves the boot setup alone.
func TestStopBeforeBootSetupUndoesEverything(t *testing.T) {
	static := buildStatic(t)
	d := newDevice(t, fixtures[0], static)
	d.host.t = t
	d.cfg.NoSetup = false
	d.cfg.MigrateAllWifis = true
	before := d.tree(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Run(ctx, Options{
		Config: d.cfg, Host: d.host, Binary: filepath.Join(d.home, "balena-migrate"),
		Log: &Log{W: &cancelOn{w: &d.log, words: "memory:", cancel: cancel}, Now: d.host.Now},
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "before the boot setup") {
		t.Fatalf("err = %v\n%s", err, d.log.String())
	}
	if diff := diffSnapshots(before, d.tree(t)); len(diff) > 0 {
		t.Fatalf("a stopped run changed the device:\n%s\n%s", strings.Join(diff, "\n"), d.log.String())
	}
}
