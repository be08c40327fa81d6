package stage1

import "testing"

func TestBeagleBoneBoot(t *testing.T) {
	const (
		uEnv   = "uname_r=" + bootRelease + "\ncmdline=coherent_pool=1M net.ifnames=0 quiet\n"
		initrd = "/boot/initrd.img-" + bootRelease
		stamp  = ".20261125T120000Z"
		plan   = `initrd=` + initrd + ` backup=/boot/uEnv.txt,` + initrd + ` added= programs= reboot="" grub=/`
		// /boot is on the root filesystem: paths relative to /
		undo = "restore=boot/uEnv.txt" + stamp + ":boot/uEnv.txt,boot/initrd.img-" + bootRelease + stamp + ":boot/initrd.img-" + bootRelease + " remove="
	)
	onRoot := bootOn("/boot", "/", "/dev/mmcblk1p1", "ext4")
	tree := map[string]string{"/boot/uEnv.txt": uEnv, initrd: "original initrd\n"}
	runBootCases(t, beagleBoneBoot{}, []bootCase{
		{name: "initramfs in place of the initrd", tree: tree, layout: onRoot, plan: plan,
			files: map[string]string{initrd: ours, initrd + stamp: "original initrd\n", "/boot/uEnv.txt": uEnv, "/boot/uEnv.txt" + stamp: uEnv},
			undo:  undo},
		{name: "DEBUG on uEnv.txt's cmdline", tree: tree, layout: onRoot, debug: true, plan: plan,
			files: map[string]string{"/boot/uEnv.txt": "uname_r=" + bootRelease + "\ncmdline=coherent_pool=1M net.ifnames=0 quiet debug\n", "/boot/uEnv.txt" + stamp: uEnv},
			undo:  undo},
		{name: "DEBUG without a cmdline line", layout: onRoot, debug: true, plan: plan,
			tree:  map[string]string{"/boot/uEnv.txt": "uname_r=" + bootRelease + "\n", initrd: "original initrd\n"},
			files: map[string]string{"/boot/uEnv.txt": "uname_r=" + bootRelease + "\ncmdline=debug\n"},
			undo:  undo},
		{name: "set up by an earlier run", layout: onRoot, tree: map[string]string{"/boot/uEnv.txt": uEnv, initrd: ours},
			err: ErrBootSetup, words: initrd + " is the balena-migrate initramfs of an earlier run"},
		{name: "no initrd", layout: onRoot, tree: map[string]string{"/boot/uEnv.txt": uEnv},
			err: ErrBootSetup, words: initrd + " is missing: this does not look like a beaglebone boot partition"},
	})
}
