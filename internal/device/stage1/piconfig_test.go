package stage1

import (
	"testing"
)

func TestPiConfigBoot(t *testing.T) {
	const (
		config  = "dtparam=audio=on\n[pi4]\narm_boost=1\n"
		cmdline = "console=serial0,115200 root=PARTUUID=6c586e13-02 rootwait\n"
		line    = "initramfs balena-migrate-initramfs-" + bootRelease + " followkernel"
		stamp   = ".20261125T120000Z"
	)
	boot := bootOn("/boot", "/boot", "/dev/mmcblk0p1", "vfat")
	tree := map[string]string{"/boot/config.txt": config, "/boot/cmdline.txt": cmdline}
	runBootCases(t, piConfigBoot{}, []bootCase{
		{name: "initramfs line appended, backups kept", tree: tree, layout: boot,
			plan: `initrd=/boot/balena-migrate-initramfs-` + bootRelease + ` backup=/boot/config.txt,/boot/cmdline.txt added= programs= reboot="" grub=/`,
			files: map[string]string{
				"/boot/config.txt": config + "\n[all]\n" + line + "\n", "/boot/cmdline.txt": cmdline,
				"/boot/config.txt" + stamp: config, "/boot/cmdline.txt" + stamp: cmdline,
				"/boot/balena-migrate-initramfs-" + bootRelease: ours,
			},
			undo: "restore=config.txt" + stamp + ":config.txt,cmdline.txt" + stamp + ":cmdline.txt remove="},
		{name: "DEBUG on cmdline.txt", tree: tree, layout: boot, debug: true,
			plan:  `initrd=/boot/balena-migrate-initramfs-` + bootRelease + ` backup=/boot/config.txt,/boot/cmdline.txt added= programs= reboot="" grub=/`,
			files: map[string]string{"/boot/cmdline.txt": "console=serial0,115200 root=PARTUUID=6c586e13-02 rootwait debug\n", "/boot/cmdline.txt" + stamp: cmdline},
			undo:  "restore=config.txt" + stamp + ":config.txt,cmdline.txt" + stamp + ":cmdline.txt remove="},
		{name: "other initramfs lines disabled", layout: boot,
			tree:  map[string]string{"/boot/config.txt": "auto_initramfs=1\ninitramfs initrd.img followkernel\n", "/boot/cmdline.txt": cmdline},
			plan:  `initrd=/boot/balena-migrate-initramfs-` + bootRelease + ` backup=/boot/config.txt,/boot/cmdline.txt added= programs= reboot="" grub=/`,
			files: map[string]string{"/boot/config.txt": "#balena-migrate# auto_initramfs=1\n#balena-migrate# initramfs initrd.img followkernel\n\n[all]\n" + line + "\n"},
			undo:  "restore=config.txt" + stamp + ":config.txt,cmdline.txt" + stamp + ":cmdline.txt remove="},
		{name: "/boot/firmware, paths relative to it", layout: bootOn("/boot/firmware", "/boot/firmware", "/dev/mmcblk0p1", "vfat"),
			tree:  map[string]string{"/boot/firmware/config.txt": config, "/boot/firmware/cmdline.txt": cmdline},
			plan:  `initrd=/boot/firmware/balena-migrate-initramfs-` + bootRelease + ` backup=/boot/firmware/config.txt,/boot/firmware/cmdline.txt added= programs= reboot="" grub=/`,
			files: map[string]string{"/boot/firmware/config.txt": config + "\n[all]\n" + line + "\n"},
			undo:  "restore=config.txt" + stamp + ":config.txt,cmdline.txt" + stamp + ":cmdline.txt remove="},
		{name: "set up by an earlier run", layout: boot,
			tree: map[string]string{"/boot/config.txt": config + "\n[all]\ninitramfs balena-migrate-initramfs-6.0 followkernel\n", "/boot/cmdline.txt": cmdline},
			err:  ErrBootSetup, words: "already boots balena-migrate-initramfs-6.0 from an earlier run"},
		{name: "no cmdline.txt", layout: boot, tree: map[string]string{"/boot/config.txt": config},
			err: ErrBootSetup, words: "/boot/cmdline.txt is missing: this does not look like a raspberrypi boot partition"},
		{name: "config.txt changed after the plan", tree: tree, layout: boot,
			before: func(d *bootDevice) {
				writeTree(d.host.t, d.root, map[string]string{"/boot/config.txt": config + "gpu_mem=64\n"})
			},
			err: ErrBootSetup, words: "/boot/config.txt changed while balena-migrate ran"},
	})
}
