package stage1

import (
	"strings"
	"testing"
)

// A Raspberry Pi 4 on Debian 12 armhf (the armv7 build) with
// raspi-firmware: the one-shot boot is the firmware's tryboot. tryboot.txt
// is config.txt with stage 1's initramfs; config.txt and cmdline.txt stay
// as they are, so that any boot but the `reboot "0 tryboot"` one boots the
// old system. An initramfs update after stage 1 (raspi-firmware's hook)
// rewrites config.txt and leaves tryboot.txt alone: the tryboot boot still
// starts stage 2 with the kernel stage 1 saw. (TestChrootARMPi2 proves the
// config.txt path of the older boards against the same hook.)
func TestChrootARMPi4Tryboot(t *testing.T) {
	c := newARMChroot(t, "rpi-armhf-bookworm", layoutPi, "arm", "7", "Raspberry Pi 4 Model B Rev 1.4", false)
	img, _ := diskImage(t)
	port := fakeBalena(t)
	const image = "resin-raspberrypi4-64-2.99.0-test.img.gz"
	c.write(chrootHome+"/"+image, string(img), 0o644)
	fw := "/boot/firmware"
	// the hook writes config.txt for the board it finds: a Pi 4 here
	c.firmwareHook(t)
	origConfig, origCmdline := c.read(t, fw+"/config.txt"), c.read(t, fw+"/cmdline.txt")
	c.write(chrootHome+"/balena-migrate.conf", armConf(image, port, ""), 0o644)
	out := c.stage1OK(t)
	if !strings.Contains(out, `reboot "0 tryboot"`) {
		t.Errorf("stage 1 does not name the tryboot reboot")
	}
	if c.read(t, fw+"/config.txt") != origConfig || c.read(t, fw+"/cmdline.txt") != origCmdline {
		t.Fatal("config.txt or cmdline.txt changed: a plain reboot would start stage 2")
	}
	tryboot := c.read(t, fw+"/tryboot.txt")
	want := append(configLines(strings.Replace(origConfig, "initramfs initrd.img-"+c.kver, "#", 1)), "[all]", "initramfs "+initramfsName(c.kver)+" followkernel")
	if strings.Join(configLines(tryboot), "\n") != strings.Join(want, "\n") {
		t.Errorf("tryboot.txt:\n%s\nwant the settings\n%s", tryboot, strings.Join(want, "\n"))
	}
	s2 := c.stage2Conf(t)
	if len(s2.RestoreBootFiles) != 0 || strings.Join(s2.RemoveBootFiles, " ") != "tryboot.txt" || s2.OrigBootPart != c.loop+"p1" {
		t.Errorf("stage-2 config: RESTORE %+v REMOVE %v ORIG_BOOT_PART %s", s2.RestoreBootFiles, s2.RemoveBootFiles, s2.OrigBootPart)
	}

	c.firmwareHook(t)
	if got := c.read(t, fw+"/tryboot.txt"); got != tryboot {
		t.Errorf("the hook changed tryboot.txt:\n%s", got)
	}
	if strings.Contains(c.read(t, fw+"/config.txt"), "balena-migrate") {
		t.Error("config.txt names stage 1's initramfs after the hook")
	}
}
