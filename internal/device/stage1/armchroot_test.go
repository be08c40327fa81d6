package stage1

// The ARM chroot tests: balena-migrate, built static for the tree's
// architecture, runs as root under qemu's user emulation (binfmt_misc) in
// ARM Debian trees debootstrapped by scripts/test-setup.d/21-stage1-arm-chroot,
// with their own kernels, initramfs-tools and grub, and — on the Raspberry
// Pi trees — Debian's raspi-firmware, whose hooks rewrite /boot/firmware on
// every kernel or initramfs update. uname -r answers the tree's kernel
// (QEMU_UNAME); the board is a device tree model on a tmpfs over the
// chroot's /sys/firmware (this machine has none).

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// armTarball is the cached ARM tree name.
func armTarball(t *testing.T, name string) string {
	return cachedTree(t, "21-stage1-arm-chroot", "debian-arm-"+name)
}

// newARMChroot unpacks an ARM tree and puts balena-migrate for goarch
// (goarm) into its home. The board is model, a device tree model ("" for
// none), booted through UEFI when efi.
func newARMChroot(t *testing.T, name string, l diskLayout, goarch, goarm, model string, efi bool) *chroot {
	for _, arch := range []string{"aarch64", "arm"} {
		data, _ := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-" + arch)
		testenv.Need(t, bytes.HasPrefix(data, []byte("enabled")), "qemu-"+arch+" registered with binfmt_misc (scripts/test-setup.d/15-arm-binfmt)")
	}
	c := newChrootFrom(t, armTarball(t, name), l, "run scripts/test-setup.d/21-stage1-arm-chroot; scripts/test does")
	mods, err := os.ReadDir(c.path("/lib/modules"))
	if err != nil || len(mods) != 1 {
		t.Fatalf("want one kernel in the tree's /lib/modules, got %v (%v)", mods, err)
	}
	c.kver, c.rel = mods[0].Name(), mods[0].Name()
	c.env = []string{"QEMU_UNAME=" + c.rel}
	if goarch == "arm" {
		c.env = append(c.env, "QEMU_CPU=cortex-a7") // uname -m: armv7l
	}
	// the hardware: a tmpfs over the chroot's /sys/firmware
	fw := c.path("/sys/firmware")
	sh(t, "mount", "-t", "tmpfs", "-o", "mode=755", "board", fw)
	if model != "" {
		c.write("/sys/firmware/devicetree/base/model", model+"\x00", 0o444)
	}
	if efi {
		// the firmware's variables as efivarfs shows them (four bytes of
		// attributes, then the value): Secure Boot off, as under AAVMF
		for _, v := range []string{"SecureBoot", "SetupMode"} {
			c.write("/sys/firmware/efi/efivars/"+v+"-8be4df61-93ca-11d2-aa0d-00e098032b8c", "\x06\x00\x00\x00\x00", 0o644)
		}
	}
	staticBinaryFor(t, c.path(chrootHome+"/balena-migrate"), goarch, goarm)
	if err := os.Chmod(c.path(chrootHome), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// armConf is a balena-migrate.conf for image, the API checked at port.
// The chroot is not the machine whose network runs here: the reachability
// contract is off (stage 1 says so in a warning).
func armConf(image string, port int, extra string) string {
	return fmt.Sprintf("IMAGE_NAME=%s\nBACKUP_DIRECTORIES=/etc/default\nBALENA_API_HOST=127.0.0.1\nBALENA_API_PORT=%d\n"+
		"BALENA_VPN_HOST=127.0.0.1\nBALENA_VPN_PORT=%d\nMEM_MIN_FREE_S1=16M\nNETWORK_CHECK=FALSE\n%s", image, port, port, extra)
}

// stage1OK runs stage 1 for real and wants it to finish the boot setup.
func (c *chroot) stage1OK(t *testing.T, env ...string) string {
	t.Helper()
	out, code := c.runEnv(env, "")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// (a Pi 4's line goes on with the reboot argument its tryboot needs)
	if last := lines[len(lines)-1]; code != 0 || last != "migration successful, please reboot system" &&
		!strings.HasPrefix(last, "migration successful, please reboot system; reboot argument: ") {
		t.Fatalf("stage 1: exit %d, last line %q", code, lines[len(lines)-1])
	}
	return out
}

// stage2Conf reads the stage-2 config stage 1 wrote.
func (c *chroot) stage2Conf(t *testing.T) s2config.Config {
	t.Helper()
	conf, err := s2config.Load(c.path(s2config.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// firmwareHook runs raspi-firmware's hook as the end of update-initramfs
// (or a kernel package's postinst) does: it copies the newest kernel,
// initrd and device trees to /boot/firmware and writes config.txt and
// cmdline.txt anew.
func (c *chroot) firmwareHook(t *testing.T) {
	t.Helper()
	cmd := exec.Command("chroot", c.dir, "/etc/kernel/postinst.d/z50-raspi-firmware", c.kver, "/boot/vmlinuz-"+c.kver)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEB_MAINT_PARAMS=configure"}, c.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("raspi-firmware hook: %v\n%s", err, out)
	}
}

func (c *chroot) read(t *testing.T, p string) string {
	t.Helper()
	return string(mustRead(t, c.path(p)))
}

// configLines are the settings of a config.txt: no comments, no blanks.
func configLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// A Raspberry Pi 2 on Debian 12 armhf (armv7, linux-image-armmp and
// raspi-firmware): the armv7 build runs, config.txt names the initramfs,
// which holds the tree's armmp modules.
func TestChrootARMPi2(t *testing.T) {
	c := newARMChroot(t, "rpi-armhf-bookworm", layoutPi, "arm", "7", "Raspberry Pi 2 Model B Rev 1.1", false)
	img, _ := diskImage(t)
	port := fakeBalena(t)
	const image = "resin-raspberry-pi2-2.99.0-test.img.gz"
	c.write(chrootHome+"/"+image, string(img), 0o644)
	fw := "/boot/firmware"
	origConfig := c.read(t, fw+"/config.txt")
	c.write(chrootHome+"/balena-migrate.conf", armConf(image, port, ""), 0o644)
	out := c.stage1OK(t)
	if !strings.Contains(out, "on Raspberry Pi 2 Model B (armv7l), kernel "+c.kver) {
		t.Errorf("stage 1 did not see a Raspberry Pi 2 on armv7l with kernel %s", c.kver)
	}
	cfg := c.read(t, fw+"/config.txt")
	want := append(configLines(strings.Replace(origConfig, "initramfs initrd.img-"+c.kver, "#", 1)), "[all]", "initramfs "+initramfsName(c.kver)+" followkernel")
	if strings.Join(configLines(cfg), "\n") != strings.Join(want, "\n") {
		t.Errorf("config.txt:\n%s\nwant the settings\n%s", cfg, strings.Join(want, "\n"))
	}
	c.checkInitramfs(t)
	c.firmwareHook(t)
	if got := c.read(t, fw+"/config.txt"); got != origConfig {
		t.Errorf("after the hook, config.txt is not the hook's own:\n%s", got)
	}
}

// A BeagleBone Black on Debian 13 armhf, laid out as BeagleBoard.org's
// images are: u-boot reads /boot/uEnv.txt, which names the kernel release,
// and loads /boot/initrd.img-<release>. Stage 1 puts its initramfs there
// and keeps the original and uEnv.txt for stage 2 to put back.
func TestChrootARMBeagleBone(t *testing.T) {
	c := newARMChroot(t, "bbb-armhf-trixie", layoutBIOS, "arm", "7", "TI AM335x BeagleBone Black", false)
	img, _ := diskImage(t)
	port := fakeBalena(t)
	const image = "resin-beaglebone-black-2.99.0-test.img.gz"
	c.write(chrootHome+"/"+image, string(img), 0o644)
	uEnv := "uname_r=" + c.kver + "\ncmdline=coherent_pool=1M net.ifnames=0\n"
	c.write("/boot/uEnv.txt", uEnv, 0o644)
	orig := mustRead(t, c.path("/boot/initrd.img-"+c.kver))
	c.write(chrootHome+"/balena-migrate.conf", armConf(image, port, ""), 0o644)
	out := c.stage1OK(t)
	if !strings.Contains(out, "on TI AM335x BeagleBone Black (armv7l), kernel "+c.kver) {
		t.Errorf("stage 1 did not see a BeagleBone Black on armv7l with kernel %s", c.kver)
	}
	installed := mustRead(t, c.path("/boot/initrd.img-"+c.kver))
	if !bytes.Equal(installed, mustRead(t, c.path(chrootHome+"/"+initramfsName(c.kver)))) {
		t.Error("/boot/initrd.img-<release> is not stage 1's initramfs")
	}
	if c.read(t, "/boot/uEnv.txt") != uEnv {
		t.Error("uEnv.txt changed without DEBUG")
	}
	s2 := c.stage2Conf(t)
	if len(s2.RestoreBootFiles) != 2 || s2.MountBoot {
		t.Fatalf("stage-2 config: RESTORE %+v MOUNT_BOOT %t", s2.RestoreBootFiles, s2.MountBoot)
	}
	for _, r := range s2.RestoreBootFiles {
		want := map[string][]byte{"boot/uEnv.txt": []byte(uEnv), "boot/initrd.img-" + c.kver: orig}[r.Original]
		if backup, err := os.ReadFile(c.path("/" + r.Backup)); err != nil || !bytes.Equal(backup, want) || r.SHA256 != sha256Hex(backup) {
			t.Errorf("backup %s of %s: %v (content or checksum is not the original's)", r.Backup, r.Original, err)
		}
	}
	c.checkInitramfs(t)
}

// A UEFI arm64 machine on Debian 12 (generic-aarch64): the tree's own
// update-grub and grub-reboot set up grub's one-shot entry with the
// running kernel and the initramfs.
func TestChrootARMUEFI(t *testing.T) {
	c := newARMChroot(t, "uefi-arm64-bookworm", layoutUEFI, "arm64", "", "", true)
	img, _ := diskImage(t)
	port := fakeBalena(t)
	const image = "resin-generic-aarch64-2.99.0-test.img.gz"
	c.write(chrootHome+"/"+image, string(img), 0o644)
	c.write(chrootHome+"/balena-migrate.conf", armConf(image, port, ""), 0o644)
	out := c.stage1OK(t)
	if !strings.Contains(out, "on UEFI ARM machine (aarch64), kernel "+c.kver) {
		t.Errorf("stage 1 did not see a UEFI arm64 machine with kernel %s", c.kver)
	}
	cfg := c.read(t, "/boot/grub/grub.cfg")
	for _, want := range []string{"menuentry 'balena-migrate' --id balena-migrate {", "linux /boot/vmlinuz-" + c.kver + " ", "initrd /boot/" + initramfsName(c.kver) + "\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q", want)
		}
	}
	if env := sh(t, "chroot", c.dir, "grub-editenv", "/boot/grub/grubenv", "list"); !strings.Contains(env, "next_entry=balena-migrate") {
		t.Errorf("grubenv: %q", env)
	}
	if s2 := c.stage2Conf(t); s2.GrubBootType != s2config.BootUEFI {
		t.Errorf("stage-2 config: GRUB_BOOT_TYPE %q, want UEFI", s2.GrubBootType)
	}
	c.checkInitramfs(t)
}
