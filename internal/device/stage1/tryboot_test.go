package stage1

import (
	"testing"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
)

func TestHasTryboot(t *testing.T) {
	for _, tc := range []struct {
		rev, machine string
		want         bool
	}{
		{"c03111", "aarch64", true},  // Pi 4 Model B
		{"b03115", "armv7l", true},   // Pi 4 Model B, 32-bit OS
		{"c03130", "aarch64", true},  // Pi 400
		{"a03140", "aarch64", true},  // Compute Module 4
		{"c04170", "aarch64", true},  // Pi 5
		{"d04190", "aarch64", true},  // Pi 500
		{"b04180", "aarch64", true},  // Compute Module 5
		{"a02082", "armv7l", false},  // Pi 3 Model B
		{"a020d3", "aarch64", false}, // Pi 3 Model B+
		{"902120", "aarch64", false}, // Zero 2 W
		{"a020a0", "armv7l", false},  // Compute Module 3
		{"a21041", "armv7l", false},  // Pi 2 Model B
		{"9000c1", "armv6l", false},  // Zero W
		{"0010", "armv6l", false},    // Pi 1 Model B+
	} {
		d, err := devicetype.PiFromRevision(tc.rev, tc.machine)
		if err != nil {
			t.Fatalf("%s: %v", tc.rev, err)
		}
		if got := hasTryboot(d); got != tc.want {
			t.Errorf("%s (%s, %v): hasTryboot %t, want %t", tc.rev, d.Name, d.Slugs, got, tc.want)
		}
	}
	for _, d := range []devicetype.Device{
		{Name: "BIOS PC", Slugs: []string{"genericx86-64-ext"}, Family: devicetype.FamilyPC},
		{Name: "BeagleBone Black", Slugs: []string{"beaglebone-black"}, Family: devicetype.FamilyBeagleBone},
	} {
		if hasTryboot(d) {
			t.Errorf("%s: hasTryboot", d.Name)
		}
	}
}

func TestPiConfig(t *testing.T) {
	const initrd = "initramfs balena-migrate-initramfs-6.6 followkernel"
	for _, tc := range []struct {
		name, in string
		lines    []string
		want     string
	}{
		{"appended under [all] after a conditional section",
			"arm_64bit=1\n[cm4]\notg_mode=1\n", []string{initrd},
			"arm_64bit=1\n[cm4]\notg_mode=1\n\n[all]\n" + initrd + "\n"},
		{"auto_initramfs and other initramfs lines disabled",
			"auto_initramfs=1\n  initramfs initrd.img followkernel\n[all]\n", []string{initrd},
			"#balena-migrate# auto_initramfs=1\n#balena-migrate#   initramfs initrd.img followkernel\n[all]\n\n[all]\n" + initrd + "\n"},
		{"no trailing newline",
			"dtparam=audio=on", []string{initrd},
			"dtparam=audio=on\n\n[all]\n" + initrd + "\n"},
		{"a command line file of its own replaces cmdline=",
			"cmdline=cmdline-a.txt\n[pi4]\ncmdline=cmdline-b.txt\n", []string{initrd, "cmdline=" + trybootCmdline},
			"#balena-migrate# cmdline=cmdline-a.txt\n[pi4]\n#balena-migrate# cmdline=cmdline-b.txt\n\n[all]\n" + initrd + "\ncmdline=" + trybootCmdline + "\n"},
		{"cmdline= kept when not replaced",
			"cmdline=cmdline-a.txt\n", []string{initrd},
			"cmdline=cmdline-a.txt\n\n[all]\n" + initrd + "\n"},
		{"include lines stay",
			"include extra.txt\n", []string{initrd},
			"include extra.txt\n\n[all]\n" + initrd + "\n"},
	} {
		if got := piConfig(tc.in, tc.lines...); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestPiTrybootBoot(t *testing.T) {
	const (
		config  = "arm_64bit=1\nauto_initramfs=1\n[cm4]\notg_mode=1\n"
		cmdline = "console=serial0,115200 root=PARTUUID=6c586e13-02 rootwait\n"
		line    = "initramfs balena-migrate-initramfs-" + bootRelease + " followkernel"
		dir     = "/boot/firmware"
		plan    = `initrd=` + dir + `/balena-migrate-initramfs-` + bootRelease + ` backup= added=` + dir + `/tryboot.txt programs= reboot="0 tryboot" grub=/`
	)
	boot := bootOn(dir, dir, "/dev/mmcblk0p1", "vfat")
	tree := map[string]string{dir + "/config.txt": config, dir + "/cmdline.txt": cmdline}
	unchanged := func(t *testing.T, d *bootDevice) {
		if d.read(t, dir+"/config.txt") != config || d.read(t, dir+"/cmdline.txt") != cmdline {
			t.Error("config.txt or cmdline.txt changed")
		}
	}
	runBootCases(t, piTrybootBoot{}, []bootCase{
		{name: "tryboot.txt from config.txt, nothing else changed", tree: tree, layout: boot, plan: plan,
			files: map[string]string{dir + "/tryboot.txt": piConfig(config, line), dir + "/balena-migrate-initramfs-" + bootRelease: ours},
			check: unchanged, undo: "restore= remove=tryboot.txt"},
		{name: "DEBUG: a command line file of its own", tree: tree, layout: boot, debug: true,
			plan: `initrd=` + dir + `/balena-migrate-initramfs-` + bootRelease + ` backup= added=` + dir + `/tryboot.txt,` + dir + `/balena-migrate-cmdline.txt programs= reboot="0 tryboot" grub=/`,
			files: map[string]string{
				dir + "/tryboot.txt":                piConfig(config, line, "cmdline=balena-migrate-cmdline.txt"),
				dir + "/balena-migrate-cmdline.txt": "console=serial0,115200 root=PARTUUID=6c586e13-02 rootwait debug\n",
			},
			check: unchanged, undo: "restore= remove=tryboot.txt,balena-migrate-cmdline.txt"},
		{name: "the operator's tryboot.txt is put back", layout: boot,
			tree:  map[string]string{dir + "/config.txt": config, dir + "/cmdline.txt": cmdline, dir + "/tryboot.txt": "arm_64bit=1\n"},
			plan:  `initrd=` + dir + `/balena-migrate-initramfs-` + bootRelease + ` backup=` + dir + `/tryboot.txt added= programs= reboot="0 tryboot" grub=/`,
			files: map[string]string{dir + "/tryboot.txt": piConfig(config, line), dir + "/tryboot.txt.20261125T120000Z": "arm_64bit=1\n"},
			undo:  "restore=tryboot.txt.20261125T120000Z:tryboot.txt remove="},
		{name: "an earlier run's tryboot.txt is replaced and removed", layout: boot, plan: plan,
			tree:  map[string]string{dir + "/config.txt": config, dir + "/cmdline.txt": cmdline, dir + "/tryboot.txt": "[all]\ninitramfs balena-migrate-initramfs-6.0 followkernel\n"},
			files: map[string]string{dir + "/tryboot.txt": piConfig(config, line)},
			undo:  "restore= remove=tryboot.txt"},
		{name: "config.txt set up by an earlier run", layout: boot,
			tree: map[string]string{dir + "/config.txt": config + "[all]\ninitramfs balena-migrate-initramfs-6.0 followkernel\n", dir + "/cmdline.txt": cmdline},
			err:  ErrBootSetup, words: "already boots balena-migrate-initramfs-6.0"},
		{name: "no config.txt", layout: boot, tree: map[string]string{dir + "/cmdline.txt": cmdline},
			err: ErrBootSetup, words: dir + "/config.txt is missing"},
	})
}
