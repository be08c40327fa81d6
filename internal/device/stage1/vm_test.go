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
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
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
	# a watchdog left running would reset the machine within this hold
	if [ -e /home/migrate/hold ]; then
		sleep "$(cat /home/migrate/hold)"
		echo "VM-STILL-UP"
	fi
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

// bootHas fails t unless the console of boot (its name in the message)
// holds every one of wants.
func bootHas(t *testing.T, boot, console string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(console, want) {
			t.Fatalf("%s lacks %q:\n%s", boot, want, tail([]byte(console), 60))
		}
	}
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
		"BACKUP_DIRECTORIES=/etc/default\nBALENA_API_HOST=\nBALENA_VPN_HOST=\nMEM_MIN_FREE_S1=16M\nMAX_BADBLOCKS=0\n"+
		"WATCHDOG="+strconv.Itoa(vmWatchdog)+"\n", 0o644)
	c.write("/usr/local/sbin/vm-init", vmInit, 0o755)
	c.write(chrootHome+"/hold", strconv.Itoa(vmWatchdog+10), 0o644)
	// The old system's own grub entry, booted after a reset, runs the same
	// init on the serial console (update-grub in stage 1 writes it).
	c.write("/etc/default/grub", "GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_DISTRIBUTOR=Debian\n"+
		"GRUB_CMDLINE_LINUX=\"console=ttyS0 panic=-1 init=/usr/local/sbin/vm-init no_timer_check\"\n", 0o644)
	// Only the chroot's own kernel boots in the VM: the copies under this
	// machine's release (for stage 1 in the chroot) have no initrd and
	// would be grub's default entry.
	if c.rel != c.kver {
		for _, name := range []string{"config-", "vmlinuz-", "System.map-"} {
			if err := os.Remove(c.path("/boot/" + name + c.rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
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

	first := qemu(t, 15*time.Minute, "-kernel", kernel, "-initrd", initrd, "-drive", drive,
		"-append", "root=/dev/vda1 rw console=ttyS0 panic=-1 init=/usr/local/sbin/vm-init no_timer_check")
	if !strings.Contains(first, "migration successful, please reboot system") || !strings.Contains(first, "VM-STAGE1-EXIT=0") {
		t.Fatalf("stage 1 in the VM did not succeed:\n%s", tail([]byte(first), 60))
	}
	if !strings.Contains(first, "grub boots balena-migrate once on the next boot") {
		t.Fatalf("stage 1 did not set up grub:\n%s", tail([]byte(first), 40))
	}
	// The cloud kernel has no driver for a hardware watchdog here: softdog.
	if !strings.Contains(first, "watchdog: no hardware watchdog, softdog") {
		t.Fatalf("stage 1 did not choose softdog:\n%s", tail([]byte(first), 40))
	}
	// A copy of the disk as stage 1 left it, for a stage-2 boot that hangs.
	hung := filepath.Join(t.TempDir(), "hung.img")
	sh(t, "cp", "--sparse=always", c.disk, hung)

	second := qemu(t, 6*time.Minute, "-drive", drive)
	bootHas(t, "second boot", second,
		"stage 2 starting",
		// badblocks came into the initramfs with its libraries and ran
		"0 bad blocks found (MAX_BADBLOCKS=0)",
		"NO_FLASH=TRUE: stopping before flashing",
		// the init-top script armed softdog, stage 2 fed it and stopped it
		"(softdog) armed: the machine resets unless stage 2 takes it over within "+strconv.Itoa(vmWatchdog)+" s",
		`watchdog "Software Watchdog" taken over: `+strconv.Itoa(vmWatchdog)+" s timeout",
		"watchdog stopped after ",
		"VM-SECOND-BOOT: BOOT_IMAGE=/boot/vmlinuz-"+ver,
		// the old system ran past the timeout: the watchdog was disarmed
		"VM-STILL-UP",
	)
	if strings.Contains(second, "watchdog stopped after 0 feeds") {
		t.Fatalf("stage 2 never fed the watchdog:\n%s", balenaLines(second))
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

	hungBoot(t, hung, ver)
}

// vmWatchdog is the WATCHDOG timeout of the VM tests: short, to keep the
// hung boot short, but longer than the initramfs takes under TCG from
// init-top to stage 2.
const vmWatchdog = 30

// hungBoot breaks the installed initramfs of disk so that its stage-2 step
// blocks for ever, as stage 2 would on a disk that stops answering, and
// boots it with resets allowed: softdog, armed by the init-top script,
// resets the VM and grub, its one shot used, boots the old system.
func hungBoot(t *testing.T, disk, ver string) {
	loop := sh(t, "losetup", "--find", "--show", "--offset", "1048576", disk)
	mnt := t.TempDir()
	sh(t, "mount", loop, mnt)
	blocker := vmtest.Archive{}
	blocker.AddFile("scripts/local-bottom/balena-migrate", []byte("#!/bin/sh\n"+
		"[ \"$1\" = prereqs ] && exit 0\n"+
		"echo 'VM-TEST: the stage-2 step blocks'\n"+
		"while :; do sleep 60; done\n"), 0o755)
	// The kernel unpacks archives appended to an initramfs over the earlier ones.
	f, err := os.OpenFile(filepath.Join(mnt, "boot", initramfsName(ver)), os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		err = blocker.WriteGzip(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	sh(t, "umount", mnt)
	sh(t, "losetup", "-d", loop)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-nographic", "-m", "1024",
		"-drive", "file="+disk+",format=raw,if=virtio").CombinedOutput()
	t.Logf("hung boot: qemu ran %v", time.Since(start).Round(time.Second))
	if err != nil || ctx.Err() != nil {
		t.Fatalf("qemu: %v (%v): the watchdog did not bring the old system back\n%s", err, ctx.Err(), tail(out, 60))
	}
	console := string(out)
	order := []string{
		"(softdog) armed",
		"VM-TEST: the stage-2 step blocks",
		"Initiating system reboot",
		"VM-SECOND-BOOT: BOOT_IMAGE=/boot/vmlinuz-" + ver,
	}
	at := 0
	for _, want := range order {
		i := strings.Index(console[at:], want)
		if i < 0 {
			t.Fatalf("hung boot lacks %q after the earlier steps:\n%s", want, tail(out, 60))
		}
		at += i + len(want)
	}
	if strings.Contains(console, "stage 2 starting") {
		t.Fatalf("stage 2 ran although its step was blocked:\n%s", tail(out, 60))
	}
	if env := readGrubenv(t, disk); !bytes.Contains(env, []byte("\nnext_entry=\n")) {
		t.Fatalf("grub did not clear next_entry: the entry would boot again:\n%s", env)
	}
	t.Logf("hung boot:\n%s", balenaLines(console))
}

func balenaLines(console string) string {
	var out []string
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "balena-migrate]") || strings.HasPrefix(l, "VM-") || strings.HasPrefix(l, "migration ") || strings.Contains(l, "softdog") {
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
