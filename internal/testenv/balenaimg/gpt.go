package balenaimg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/blkdev"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// BuildGPT writes a generic-amd64-shaped image booting with UEFI: a GPT
// whose resin-boot is the EFI system partition, holding grub's EFI image at
// the removable-media path (EFI/BOOT/BOOTX64.EFI) and its grub.cfg beside
// it, then resin-rootA, resin-rootB, resin-state and resin-data.
func BuildGPT(ctx context.Context, o Options) (Image, error) {
	rootA, err := rootFiles(o)
	if err != nil {
		return Image{}, err
	}
	efi, err := efiImage(ctx, filepath.Dir(o.Path))
	if err != nil {
		return Image{}, err
	}
	boot := map[string][]byte{"EFI/BOOT/BOOTX64.EFI": efi, "EFI/BOOT/grub.cfg": []byte(grubCfg)}
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
	return buildGPT(o.Path, size, parts)
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

// buildGPT partitions a new image with sfdisk (partition names = labels)
// and writes each partition's content.
func buildGPT(path string, size int64, parts []testimg.Part) (Image, error) {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return Image{}, err
	}
	if err := os.Truncate(path, size); err != nil {
		return Image{}, err
	}
	var script strings.Builder
	script.WriteString("label: gpt\nunit: sectors\n")
	for _, p := range parts {
		fmt.Fprintf(&script, "size=%d, type=%s, name=%s\n", p.Size/512, p.Type, p.Label)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", path)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return Image{}, fmt.Errorf("sfdisk %s: %w: %s", path, err, out)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Image{}, err
	}
	defer f.Close()
	table, err := blkdev.ReadTable(f)
	if err != nil {
		return Image{}, fmt.Errorf("read back table of %s: %w", path, err)
	}
	if len(table) != len(parts) {
		return Image{}, fmt.Errorf("%s: sfdisk made %d partitions, want %d", path, len(table), len(parts))
	}
	for i, p := range parts {
		data, err := testimg.Content(filepath.Dir(path), table[i].Length, p)
		if err != nil {
			return Image{}, err
		}
		if _, err := f.WriteAt(data, table[i].Start); err != nil {
			return Image{}, err
		}
	}
	return Image{testimg.Image{Path: path, Size: size, Parts: table}}, f.Sync()
}
