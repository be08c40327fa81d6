package balenaimg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// BuildGPT writes a generic-amd64-shaped image booting with UEFI: a GPT
// whose resin-boot is the EFI system partition, holding grub's EFI image at
// the removable-media path (EFI/BOOT/BOOTX64.EFI) and its grub.cfg beside
// it, then resin-rootA, resin-rootB, resin-state and resin-data.
func BuildGPT(ctx context.Context, o Options) (Image, error) {
	rootA, err := rootFiles(o, pc)
	if err != nil {
		return Image{}, err
	}
	efi, err := efiImage(ctx, filepath.Dir(o.Path))
	if err != nil {
		return Image{}, err
	}
	return buildGPT(o, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": efi, "EFI/BOOT/grub.cfg": []byte(grubCfg)}, rootA)
}

// buildGPT lays out a GPT stand-in: resin-boot, the EFI system partition,
// with boot (and o.Boot), resin-rootA with rootA, then resin-rootB,
// resin-state and resin-data.
func buildGPT(o Options, boot, rootA map[string][]byte) (Image, error) {
	for k, v := range o.Boot {
		boot[k] = v
	}
	parts := []testimg.Part{
		{Size: 32 * testimg.MiB, Type: "uefi", FS: "vfat", Label: testimg.LabelBoot, Files: boot},
		{Size: sizeFor(rootA), Type: "linux", FS: "ext4", Label: testimg.LabelRootA, Files: rootA},
		{Size: 8 * testimg.MiB, Type: "linux", FS: "ext4", Label: testimg.LabelRootB},
		{Size: 4 * testimg.MiB, Type: "linux", FS: "ext4", Label: testimg.LabelState},
		{Size: 16 * testimg.MiB, Type: "linux", FS: "ext4", Label: testimg.LabelData, Files: copyFiles(o.Data)},
	}
	size := int64(2 * testimg.MiB) // the primary and the backup table
	for _, p := range parts {
		size += p.Size
	}
	img, err := testimg.BuildGPT(o.Path, size, parts)
	return Image{img}, err
}

// efiImage makes grub's EFI image: everything it needs built in, grub.cfg
// read from the directory it was loaded from.
func efiImage(ctx context.Context, tmp string) ([]byte, error) {
	out := filepath.Join(tmp, "BOOTX64.EFI")
	defer os.Remove(out)
	args := append([]string{"-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o", out}, "part_gpt", "fat", "ext2", "normal", "linux",
		"search", "search_label", "serial", "terminal", "echo", "configfile", "test", "efi_gop", "gzio")
	if b, err := exec.CommandContext(ctx, "grub-mkimage", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("grub-mkimage x86_64-efi (grub-efi-amd64-bin): %w: %s", err, b)
	}
	return os.ReadFile(out)
}
