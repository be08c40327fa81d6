package stage1

// The whole migration up to the flash, in a VM: the chroot's disk boots
// (Debian's kernel under qemu), balena-migrate runs there for real and sets
// up grub; the VM reboots through the BIOS and grub into the one-shot entry,
// whose initramfs runs stage 2 from local-bottom; stage 2 verifies the image
// against the SHA-256 stage 1 recorded and, with NO_FLASH=TRUE, hands back
// to the old system, after a bad-block scan with the badblocks program stage
// 1 put into the initramfs. Nothing is faked: uname -r is the installed kernel's.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// vmInit is the VM's init (init= on the kernel command line, which our
// grub entry carries over): stage 1 on the first boot, a report on the second.
const vmInit = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -o remount,rw /
if [ -e /home/migrate/first-boot-done ]; then
	echo "VM-SECOND-BOOT: $(cat /proc/cmdline)"
	sync
	echo o >/proc/sysrq-trigger
	sleep 10
fi
touch /home/migrate/first-boot-done
/home/migrate/balena-migrate --home /home/migrate
echo "VM-STAGE1-EXIT=$?"
sync
echo b >/proc/sysrq-trigger
sleep 10
`

func qemu(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args = append([]string{"-accel", "tcg", "-nographic", "-no-reboot", "-m", "1024"}, args...)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", args...).CombinedOutput()
	t.Logf("qemu ran %v", time.Since(start).Round(time.Second))
	if ctx.Err() != nil || err != nil {
		t.Fatalf("qemu: %v (%v)\n%s", err, ctx.Err(), tail(out, 60))
	}
	return string(out)
}

func tail(b []byte, n int) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestVMStage1ThenStage2(t *testing.T) {
	if testing.Short() {
		t.Skip("two VM boots under TCG take about two minutes")
	}
	t.Parallel() // the BIOS and the UEFI run overlap: each qemu uses one core
	testenv.NeedProgram(t, "qemu-system-x86_64")
	c := newChroot(t, "bookworm")
	img, imgSum := diskImage(t)
	staticBinary(t, c.path(chrootHome+"/balena-migrate"))
	c.write(chrootHome+"/resin-genericx86-64-2.99.0-test.img.gz", string(img), 0o644)
	c.write(chrootHome+"/balena-migrate.conf", "IMAGE_NAME=resin-genericx86-64-2.99.0-test.img.gz\n"+
		"BACKUP_DIRECTORIES=/etc/default\nBALENA_API_HOST=\nBALENA_VPN_HOST=\nMEM_MIN_FREE_S1=16M\nMAX_BADBLOCKS=0\n", 0o644)
	c.write("/usr/local/sbin/vm-init", vmInit, 0o755)
	// As on a small device: only the modules this machine needs.
	conf := strings.Replace(string(mustRead(t, c.path("/etc/initramfs-tools/initramfs.conf"))), "MODULES=most", "MODULES=dep", 1)
	c.write("/etc/initramfs-tools/initramfs.conf", conf, 0o644)
	sh(t, "chroot", c.dir, "grub-install", "--target=i386-pc", c.loop)
	ver := filepath.Base(mustGlob(t, c.path("/lib/modules/*-amd64")))
	kernel, initrd := filepath.Join(t.TempDir(), "vmlinuz"), filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(kernel, mustRead(t, c.path("/boot/vmlinuz-"+ver)), 0o644)
	os.WriteFile(initrd, mustRead(t, c.path("/boot/initrd.img-"+ver)), 0o644)
	c.release()
	drive := "file=" + c.disk + ",format=raw,if=virtio"

	first := qemu(t, 8*time.Minute, "-kernel", kernel, "-initrd", initrd, "-drive", drive,
		"-append", "root=/dev/vda1 rw console=ttyS0 panic=-1 init=/usr/local/sbin/vm-init no_timer_check")
	if !strings.Contains(first, "migration successful, please reboot system") || !strings.Contains(first, "VM-STAGE1-EXIT=0") {
		t.Fatalf("stage 1 in the VM did not succeed:\n%s", tail([]byte(first), 60))
	}
	if !strings.Contains(first, "grub boots balena-migrate once on the next boot") {
		t.Fatalf("stage 1 did not set up grub:\n%s", tail([]byte(first), 40))
	}

	second := qemu(t, 6*time.Minute, "-drive", drive)
	for _, want := range []string{
		"stage 2 starting",
		// badblocks came into the initramfs with its libraries and ran
		"0 bad blocks found (MAX_BADBLOCKS=0)",
		"NO_FLASH=TRUE: stopping before flashing",
		"VM-SECOND-BOOT: BOOT_IMAGE=/boot/vmlinuz-" + ver,
	} {
		if !strings.Contains(second, want) {
			t.Fatalf("second boot lacks %q:\n%s", want, tail([]byte(second), 60))
		}
	}
	if strings.Contains(second, "balena-migrate] ERROR") {
		t.Fatalf("stage 2 reported an error:\n%s", tail([]byte(second), 60))
	}
	// grub-reboot is one shot: grub cleared next_entry when it used it
	if env := readGrubenv(t, c.disk); !bytes.Contains(env, []byte("\nnext_entry=\n")) {
		t.Fatalf("grub did not clear next_entry: the entry would boot again:\n%s", env)
	}
	t.Logf("first boot:\n%s", balenaLines(first))
	t.Logf("second boot:\n%s", balenaLines(second))
	t.Logf("image sha256 %s verified by stage 2", imgSum)
}

func balenaLines(console string) string {
	var out []string
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "balena-migrate]") || strings.HasPrefix(l, "VM-") || strings.HasPrefix(l, "migration ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

func mustGlob(t *testing.T, pattern string) string {
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s: %v", pattern, m)
	}
	return m[0]
}

// readGrubenv reads /boot/grub/grubenv from the disk image's partition.
func readGrubenv(t *testing.T, disk string) []byte { return readGrubenvAt(t, disk, 1<<20) }

// readGrubenvAt reads /boot/grub/grubenv from the ext4 partition at byte
// offset off of the disk image.
func readGrubenvAt(t *testing.T, disk string, off int64) []byte {
	loop := sh(t, "losetup", "--find", "--show", "--read-only", "--offset", strconv.FormatInt(off, 10), disk)
	defer exec.Command("losetup", "-d", loop).Run()
	mnt := t.TempDir()
	sh(t, "mount", "-o", "ro,noload", loop, mnt)
	defer exec.Command("umount", mnt).Run()
	return mustRead(t, filepath.Join(mnt, "boot/grub/grubenv"))
}
