package balenaimg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// The ARM stand-ins boot Debian's arm64 kernels (cached by
// scripts/test-setup.d/21-stage1-arm-chroot and 22-arm-pi-kernel,
// vmtest.FindARMKernel) with the static arm64 busybox cached beside each
// and an arm64 balenaos-standin (BuildStandinFor).

// arm64Virt is qemu's arm64 virt machine: virtio on PCI, like the PC.
var arm64Virt = board{modules: pc.modules}

// pi3 is the Raspberry Pi 3: the SD card behind the sdhost controller,
// the network a USB adapter on the dwc2 controller (with its PHY), FAT
// and ext4 with the crc32c it checksums with (modules in Debian's arm64
// kernel; ext4 names crc32c only as a soft dependency), and the PM
// watchdog, whose driver powers the board off.
var pi3 = board{modules: []string{"bcm2835", "phy_generic", "dwc2", "usbnet", "cdc_ether", "rndis_host",
	"vfat", "nls_cp437", "nls_iso8859_1", "nls_ascii", "crc32c_generic", "ext4", "bcm2835_wdt"}}

// BuildGenericAArch64 writes a generic-aarch64-shaped image booting with
// UEFI on an arm64 machine: as BuildGPT, with grub's arm64 EFI image at
// the removable-media path (EFI/BOOT/BOOTAA64.EFI), made from the tree's
// grub modules (o.Kernel.GrubARM64), and the console on the PL011.
func BuildGenericAArch64(ctx context.Context, o Options) (Image, error) {
	rootA, err := rootFiles(o, arm64Virt)
	if err != nil {
		return Image{}, err
	}
	efi := filepath.Join(filepath.Dir(o.Path), "BOOTAA64.EFI")
	defer os.Remove(efi)
	args := []string{"-d", o.Kernel.GrubARM64, "-O", "arm64-efi", "-p", "/EFI/BOOT", "-o", efi,
		"part_gpt", "fat", "ext2", "normal", "linux", "search", "search_label", "echo", "configfile", "test", "efi_gop", "gzio"}
	if b, err := exec.CommandContext(ctx, "grub-mkimage", args...).CombinedOutput(); err != nil {
		return Image{}, fmt.Errorf("grub-mkimage arm64-efi with %s: %w: %s", o.Kernel.GrubARM64, err, b)
	}
	image, err := os.ReadFile(efi)
	if err != nil {
		return Image{}, err
	}
	boot := map[string][]byte{"EFI/BOOT/BOOTAA64.EFI": image, "EFI/BOOT/grub.cfg": []byte(grubCfgARM64)}
	return buildGPT(o, boot, rootA)
}

// grubCfgARM64 is grubCfg for the arm64 machine, whose firmware console is
// the serial one.
const grubCfgARM64 = `set timeout=0
search --no-floppy --set=root --label resin-rootA
echo "stand-in grub: booting resin-rootA"
linux /boot/vmlinuz console=ttyAMA0,115200 rdinit=/init panic=-1 loglevel=4
initrd /boot/initramfs.gz
boot
`

// BuildRaspberryPi3 writes a raspberrypi3-shaped image: an MBR with
// resin-boot (FAT), resin-rootA, resin-rootB and, in an extended
// partition, resin-state and resin-data, as balenaOS lays out a Pi's SD
// card. resin-boot holds what the Pi's firmware reads (package
// pifirmware models it): config.txt, cmdline.txt, the 64-bit kernel as
// kernel8.img, the Pi 3's device tree under the name the firmware looks
// for (bcm2710-rpi-3-b.dtb; Debian's upstream one, o.DTB) and the
// stand-in's initramfs.
func BuildRaspberryPi3(ctx context.Context, o Options) (Image, error) {
	initrd, err := initramfs(o, pi3)
	if err != nil {
		return Image{}, err
	}
	kernel, err := os.ReadFile(o.Kernel.Vmlinuz)
	if err != nil {
		return Image{}, err
	}
	dtb, err := os.ReadFile(filepath.Join(o.Kernel.DTBs, "bcm2837-rpi-3-b.dtb"))
	if err != nil {
		return Image{}, fmt.Errorf("the Pi 3's device tree: %w", err)
	}
	boot := map[string][]byte{
		"config.txt":          []byte("arm_64bit=1\nenable_uart=1\ninitramfs initramfs.gz followkernel\n"),
		"cmdline.txt":         []byte("console=ttyS1,115200 rdinit=/init panic=-1 loglevel=4\n"),
		"kernel8.img":         kernel,
		"bcm2710-rpi-3-b.dtb": dtb,
		"initramfs.gz":        initrd,
	}
	for k, v := range o.Boot {
		boot[k] = v
	}
	rootA := map[string][]byte{"etc/os-release": []byte("ID=balena-os\nNAME=balenaOS stand-in\n")}
	parts := []testimg.Part{
		{Size: sizeFor(boot) + 8*testimg.MiB, Type: "c", FS: "vfat", Label: testimg.LabelBoot, Files: boot},
		{Size: sizeFor(rootA), Type: "83", FS: "ext4", Label: testimg.LabelRootA, Files: rootA},
		{Size: 8 * testimg.MiB, Type: "83", FS: "ext4", Label: testimg.LabelRootB},
		{Size: 4 * testimg.MiB, Type: "83", FS: "ext4", Label: testimg.LabelState, Logical: true},
		{Size: 16 * testimg.MiB, Type: "83", FS: "ext4", Label: testimg.LabelData, Logical: true, Files: copyFiles(o.Data)},
	}
	var size int64 = 4 * testimg.MiB // before the first partition, and slack
	for _, p := range parts {
		size += p.Size
		if p.Logical {
			size += testimg.MiB
		}
	}
	img, err := testimg.Build(o.Path, size, parts)
	return Image{img}, err
}
