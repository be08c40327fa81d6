package stage1

import (
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

// grubTree is a PC's root with grub and the fake programs the grub boot
// setup runs (fakeHost acts them out on the tree).
func grubTree(kernelCmdline string) map[string]string {
	return map[string]string{
		"/boot/vmlinuz-" + bootRelease: "kernel",
		"/boot/grub/grub.cfg":          "menuentry 'Debian GNU/Linux' --id gnulinux {\n}\n",
		"/boot/grub/grubenv":           "# GRUB Environment Block\n",
		"/etc/grub.d/10_linux":         "#!/bin/sh\n",
		"/proc/cmdline":                kernelCmdline,
		"/usr/sbin/update-grub":        "", "/usr/sbin/grub-reboot": "", "/usr/sbin/grub-probe": "",
	}
}

// wantEntry checks the grub entry: the kernel line and the initramfs line.
func wantEntry(linux, initrd string) func(t *testing.T, d *bootDevice) {
	return func(t *testing.T, d *bootDevice) {
		t.Helper()
		entry := d.read(t, "/etc/grub.d/42_balena")
		for _, want := range []string{"menuentry 'balena-migrate' --id balena-migrate {", "search --no-floppy --fs-uuid --set=root 0b8fb1b6-2d1c-4c5e-a1b2-3c4d5e6f7a8b\n", "\tlinux " + linux + "\n", "\tinitrd " + initrd + "\n"} {
			if !strings.Contains(entry, want) {
				t.Errorf("42_balena lacks %q:\n%s", want, entry)
			}
		}
		if cfg := d.read(t, "/boot/grub/grub.cfg"); !strings.Contains(cfg, "--id balena-migrate") {
			t.Errorf("update-grub was not run: %s", cfg)
		}
	}
}

func TestGrubBIOSBoot(t *testing.T) {
	const (
		cmdline = "BOOT_IMAGE=/boot/vmlinuz-" + bootRelease + " root=UUID=0b8fb1b6 ro quiet\n"
		initrd  = "/boot/balena-migrate-initramfs-" + bootRelease
		plan    = `initrd=` + initrd + ` backup= added= programs=update-grub,grub-reboot,grub-probe reboot="" grub=legacy/`
	)
	onRoot := bootOn("/boot", "/", "/dev/sda1", "ext4")
	next := map[string]string{"/boot/grub/grubenv": "# GRUB Environment Block\nnext_entry=balena-migrate\n", initrd: ours}
	grubFiles := func(c *Config) {
		c.GrubInstall, c.GrubCfg, c.GrubBootImg, c.GrubCoreImg = true, "/home/m/grub.cfg", "/home/m/boot.img", "/home/m/core.img"
	}
	runBootCases(t, grubBIOSBoot{}, []bootCase{
		{name: "one-shot entry with the running kernel's command line", tree: grubTree(cmdline), layout: onRoot, plan: plan, files: next,
			check: wantEntry("/boot/vmlinuz-"+bootRelease+" root=UUID=0b8fb1b6 ro quiet", initrd), undo: "restore= remove="},
		{name: "DEBUG", tree: grubTree(cmdline), layout: onRoot, debug: true, plan: plan, files: next,
			check: wantEntry("/boot/vmlinuz-"+bootRelease+" root=UUID=0b8fb1b6 ro quiet debug", initrd), undo: "restore= remove="},
		{name: "GRUB_INSTALL with boot.img and core.img: stage 2 flashes them", tree: grubTree(cmdline), layout: onRoot, cfg: grubFiles,
			plan: `initrd=` + initrd + ` backup= added= programs=update-grub,grub-reboot,grub-probe reboot="" grub=legacy/FLASH`, files: next,
			undo: "restore= remove="},
		{name: "GRUB_INSTALL without core.img", tree: grubTree(cmdline), layout: onRoot,
			cfg: func(c *Config) { grubFiles(c); c.GrubCoreImg = "" },
			err: usage.Err, words: "needs GRUB_BOOT_IMG and GRUB_CORE_IMG"},
		{name: "running kernel not in /boot", layout: onRoot,
			tree: map[string]string{"/boot/grub/grub.cfg": "", "/proc/cmdline": cmdline},
			err:  ErrBootSetup, words: "/boot/vmlinuz-" + bootRelease + ", the running kernel, is missing"},
		{name: "update-grub fails", tree: grubTree(cmdline), layout: onRoot, fail: "update-grub",
			err: ErrBootSetup, words: "update-grub"},
	})
}

func TestGrubEFIBoot(t *testing.T) {
	const (
		cmdline = "BOOT_IMAGE=/vmlinuz-" + bootRelease + " root=UUID=6f1c2d3e ro quiet splash\n"
		initrd  = "/boot/balena-migrate-initramfs-" + bootRelease
		plan    = `initrd=` + initrd + ` backup= added= programs=update-grub,grub-reboot,grub-probe reboot="" grub=UEFI/`
	)
	// /boot is a partition of its own: grub finds the files at its root
	sepBoot := bootOn("/boot", "/boot", "/dev/nvme0n1p2", "ext4")
	next := map[string]string{"/boot/grub/grubenv": "# GRUB Environment Block\nnext_entry=balena-migrate\n"}
	runBootCases(t, grubEFIBoot{}, []bootCase{
		{name: "paths relative to a separate /boot", tree: grubTree(cmdline), layout: sepBoot, plan: plan, files: next,
			check: wantEntry("/vmlinuz-"+bootRelease+" root=UUID=6f1c2d3e ro quiet splash", "/balena-migrate-initramfs-"+bootRelease), undo: "restore= remove="},
		{name: "/boot on the root filesystem", tree: grubTree(cmdline), layout: bootOn("/boot", "/", "/dev/nvme0n1p2", "ext4"), plan: plan, files: next,
			check: wantEntry("/boot/vmlinuz-"+bootRelease+" root=UUID=6f1c2d3e ro quiet splash", initrd), undo: "restore= remove="},
		{name: "GRUB_INSTALL needs only GRUB_CFG: the image's EFI loader boots", tree: grubTree(cmdline), layout: sepBoot,
			cfg:  func(c *Config) { c.GrubInstall, c.GrubCfg = true, "/home/m/grub.cfg" },
			plan: `initrd=` + initrd + ` backup= added= programs=update-grub,grub-reboot,grub-probe reboot="" grub=UEFI/FLASH`, files: next,
			undo: "restore= remove="},
		{name: "grub-reboot fails", tree: grubTree(cmdline), layout: sepBoot, fail: "grub-reboot",
			err: ErrBootSetup, words: "grub-reboot"},
	})
}
