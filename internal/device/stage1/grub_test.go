package stage1

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/efiboot"
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
		"/proc/self/mountinfo":         "25 1 8:2 / / rw - ext4 /dev/sda2 rw\n",
		"/usr/sbin/update-grub":        "", "/usr/sbin/grub-reboot": "", "/usr/sbin/grub-probe": "",
		"/dev/sda": string(gptDisk(espGUID)),
	}
}

// espGUID is the partition GUID of the EFI system partition on /dev/sda.
var espGUID = [16]byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

// gptDisk is the start of a disk with grub's boot code in its protective
// MBR and a GPT whose first partition has the GUID guid.
func gptDisk(guid [16]byte) []byte {
	le := binary.LittleEndian
	d := make([]byte, 34*512)
	copy(d[0x180:], "GRUB \x00Geom\x00Hard Disk\x00Read\x00 Error")
	copy(d[446:], []byte{0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	d[510], d[511] = 0x55, 0xAA
	h := d[512:]
	copy(h, "EFI PART")
	le.PutUint64(h[72:], 2)   // entries at LBA 2
	le.PutUint32(h[80:], 128) // 128 entries
	le.PutUint32(h[84:], 128) // of 128 bytes
	e := d[1024:]
	copy(e, guid[:]) // type: the EFI system partition's
	copy(e[16:], guid[:])
	le.PutUint64(e[32:], 2048)
	le.PutUint64(e[40:], 2048+1048575)
	return d
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
		// grub-pc/install_devices named another disk: after the flash the
		// BIOS would start that disk's grub, whose files are gone.
		{name: "grub's boot code on another disk", tree: with(grubTree(cmdline), "/dev/sda", string(make([]byte, 1024))), layout: onRoot,
			err: ErrBootLayout, words: "the MBR of /dev/sda holds no grub boot code: grub is installed on another disk"},
	})
}

// with is tree with one more file.
func with(tree map[string]string, path, data string) map[string]string {
	out := map[string]string{path: data}
	for k, v := range tree {
		if k != path {
			out[k] = v
		}
	}
	return out
}

// efiVar is a variable as efivarfs holds it: the attributes, then data.
func efiVar(data []byte) string { return string(append([]byte{7, 0, 0, 0}, data...)) }

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
		// The firmware started the system from an EFI system partition on
		// another disk (its GUID is not in /dev/sda's table).
		{name: "EFI system partition on another disk", layout: sepBoot,
			tree: with(with(grubTree(cmdline), efiboot.DefaultDir+"/BootCurrent-"+efiboot.GlobalGUID, efiVar([]byte{3, 0})),
				efiboot.DefaultDir+"/Boot0003-"+efiboot.GlobalGUID, efiVar(efiboot.LoadOption("debian", efiboot.Partition{Number: 1, Start: 2048, Size: 1 << 20, GPT: true, Signature: [16]byte{9, 9, 9}}, `\EFI\debian\shimx64.efi`))),
			err: ErrBootLayout, words: `the firmware started this system from Boot0003 (debian HD(1,GPT,00090909-0000-0000-0000-000000000000,0x800,0x100000)/File(\EFI\debian\shimx64.efi)), whose EFI system partition is not on /dev/sda`},
		{name: "started from the EFI system partition of the flashed disk", layout: sepBoot, plan: plan, files: next, undo: "restore= remove=",
			tree: with(with(grubTree(cmdline), efiboot.DefaultDir+"/BootCurrent-"+efiboot.GlobalGUID, efiVar([]byte{3, 0})),
				efiboot.DefaultDir+"/Boot0003-"+efiboot.GlobalGUID, efiVar(efiboot.LoadOption("debian", efiboot.Partition{Number: 1, Start: 2048, Size: 1 << 20, GPT: true, Signature: espGUID}, `\EFI\debian\shimx64.efi`)))},
	})
}
