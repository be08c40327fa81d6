package stage1

// Stage 1 and the stage-2 boot on a machine whose hardware watchdog cannot
// take WATCHDOG: qemu's i6300esb under Debian's generic kernel (1..2046 s,
// 30 s by default) with WATCHDOG=3000, as a Raspberry Pi's bcm2835_wdt met
// 300 s before 2024. Its sysfs entry links to no device, so stage 1 must
// find its driver among the loaded modules (else it takes softdog and the
// hardware path goes untested); the initramfs loads it, the driver refuses
// 3000 s and keeps 30 s, and the init-top step and stage 2 feed it at a
// third of that.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// vmInitColdplug is vmInit loading the drivers of the machine's PCI
// devices first, as udev does at boot (the VM's init replaces it).
var vmInitColdplug = strings.Replace(vmInit, "mount -o remount,rw /\n",
	"mount -o remount,rw /\nfor a in $(cat /sys/bus/pci/devices/*/modalias); do modprobe -q \"$a\"; done\n", 1)

func TestVMStage1HardwareWatchdog(t *testing.T) {
	if testing.Short() {
		t.Skip("two VM boots under TCG take minutes")
	}
	t.Parallel()
	testenv.NeedProgram(t, "qemu-system-x86_64")
	k, err := vmtest.FindGenericKernel()
	if err != nil {
		t.Fatal(err)
	}
	c := newChroot(t, "bookworm")
	ver := c.useKernel(k)
	img, _ := diskImage(t)
	staticBinary(t, c.path(chrootHome+"/balena-migrate"))
	c.write(chrootHome+"/resin-genericx86-64-2.99.0-test.img.gz", string(img), 0o644)
	c.write(chrootHome+"/balena-migrate.conf", "IMAGE_NAME=resin-genericx86-64-2.99.0-test.img.gz\n"+
		"BACKUP_DIRECTORIES=/etc/default\nBALENA_API_HOST=\nBALENA_VPN_HOST=\nMEM_MIN_FREE_S1=16M\nWATCHDOG=3000\n", 0o644)
	c.write("/usr/local/sbin/vm-init", vmInitColdplug, 0o755)
	c.write("/etc/default/grub", "GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_DISTRIBUTOR=Debian\n"+
		"GRUB_CMDLINE_LINUX=\"console=ttyS0 panic=-1 init=/usr/local/sbin/vm-init no_timer_check\"\n", 0o644)
	kernel, initrd := filepath.Join(t.TempDir(), "vmlinuz"), filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(kernel, mustRead(t, c.path("/boot/vmlinuz-"+ver)), 0o644)
	os.WriteFile(initrd, mustRead(t, c.path("/boot/initrd.img-"+ver)), 0o644)
	c.release()
	drive := "file=" + c.disk + ",format=raw,if=virtio"

	first := qemu(t, 10*time.Minute, "-device", "i6300esb", "-kernel", kernel, "-initrd", initrd, "-drive", drive,
		"-append", "root=/dev/vda1 rw console=ttyS0 panic=-1 init=/usr/local/sbin/vm-init no_timer_check")
	bootHas(t, "first boot", first,
		"watchdog: watchdog0 (i6300ESB timer) [at most 2046 s], driver i6300esb, 3000 s timeout for the stage-2 boot",
		"watchdog: its driver takes at most 2046 s, not WATCHDOG=3000",
		"migration successful, please reboot system",
		"VM-STAGE1-EXIT=0",
	)
	second := qemu(t, 10*time.Minute, "-device", "i6300esb", "-drive", drive)
	bootHas(t, "second boot", second,
		// the initramfs loaded the driver stage 1 named, which refused 3000 s
		`watchdog "i6300ESB timer" (i6300esb): the driver refused 3000 s (invalid argument) and keeps 30 s; it allows at most 2046 s`,
		"armed: fed every 10s until stage 2 takes it over",
		"the init-top feeder (pid ",
		`watchdog "i6300ESB timer" taken over: the driver refused 3000 s (invalid argument) and keeps 30 s`,
		"NO_FLASH=TRUE: stopping before flashing",
		"watchdog stopped after ",
		"VM-SECOND-BOOT: BOOT_IMAGE=/boot/vmlinuz-"+ver,
	)
	if strings.Contains(second, "balena-migrate] ERROR") {
		t.Fatalf("stage 2 reported an error:\n%s", tail([]byte(second), 60))
	}
	// The rehearsal handed back: what stage 1 installed for the stage-2
	// boot is gone, so no later update-grub offers that boot again.
	for _, f := range []string{grubScript, "/boot/" + initramfsName(ver)} {
		if !strings.Contains(second, "removed "+f+", installed by stage 1 for the stage-2 boot") || existsOnDisk(t, c.disk, 1<<20, f) {
			t.Errorf("%s was not removed when stage 2 handed back", f)
		}
	}
	t.Logf("first boot:\n%s", balenaLines(first))
	t.Logf("second boot:\n%s", balenaLines(second))
}

// useKernel replaces the chroot's kernel (and the copies under this
// machine's release) by k, as if the system ran Debian's generic kernel,
// builds its first initramfs, and returns its release.
func (c *chroot) useKernel(k vmtest.Kernel) string {
	t := c.t
	ver := filepath.Base(k.ModulesDir)
	for _, old := range []string{c.kver, c.rel} {
		for _, name := range []string{"config-", "vmlinuz-", "System.map-", "initrd.img-"} {
			os.Remove(c.path("/boot/" + name + old))
		}
		os.RemoveAll(c.path("/lib/modules/" + old))
	}
	dir := filepath.Dir(filepath.Dir(filepath.Dir(k.ModulesDir))) // the cache's kernel directory
	for src, dst := range map[string]string{"vmlinuz": "vmlinuz-", "config": "config-", "System.map": "System.map-"} {
		c.write("/boot/"+dst+ver, string(mustRead(t, filepath.Join(dir, src))), 0o644)
	}
	sh(t, "cp", "-a", k.ModulesDir, c.path("/lib/modules/"))
	// uname -r in the chroot is this machine's: it answers to that too.
	if ver != c.rel {
		if err := os.Symlink(ver, c.path("/lib/modules/"+c.rel)); err != nil {
			t.Fatal(err)
		}
	}
	// The first boot's initramfs needs only the disk and ext4; stage 1
	// builds its own in the VM with MODULES=dep, as on a small device.
	conf := string(mustRead(t, c.path("/etc/initramfs-tools/initramfs.conf")))
	c.write("/etc/initramfs-tools/initramfs.conf", strings.Replace(conf, "MODULES=most", "MODULES=list", 1), 0o644)
	c.write("/etc/initramfs-tools/modules", "virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n", 0o644)
	sh(t, "chroot", c.dir, "mkinitramfs", "-o", "/boot/initrd.img-"+ver, ver)
	c.write("/etc/initramfs-tools/initramfs.conf", strings.Replace(conf, "MODULES=most", "MODULES=dep", 1), 0o644)
	c.write("/etc/initramfs-tools/modules", "", 0o644)
	// stage 1 runs in the VM, under the generic kernel itself
	if ver != c.rel {
		os.Remove(c.path("/lib/modules/" + c.rel))
	}
	c.kver, c.rel = ver, ver
	return ver
}

// existsOnDisk reports whether path exists on the ext4 partition at byte
// offset off of the disk image.
func existsOnDisk(t *testing.T, disk string, off int64, path string) bool {
	loop := sh(t, "losetup", "--find", "--show", "--read-only", "--offset", strconv.FormatInt(off, 10), disk)
	defer exec.Command("losetup", "-d", loop).Run()
	mnt := t.TempDir()
	sh(t, "mount", "-o", "ro,noload", loop, mnt)
	defer exec.Command("umount", mnt).Run()
	_, err := os.Stat(filepath.Join(mnt, path))
	return err == nil
}
