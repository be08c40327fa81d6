package testimg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Balena partition labels.
const (
	LabelBoot  = "resin-boot"
	LabelRootA = "resin-rootA"
	LabelRootB = "resin-rootB"
	LabelState = "resin-state"
	LabelData  = "resin-data"
)

// BalenaOSSize is the size of the image BalenaOS builds.
const BalenaOSSize = 64 * MiB

// BalenaOS builds a 64 MiB balenaOS-shaped image at path: resin-boot (vfat),
// rootA and rootB (seeded random bytes, so any misplaced byte shows), an
// extended partition with resin-state (ext4) and resin-data (ext4).
func BalenaOS(path string) (Image, error) {
	return Build(path, BalenaOSSize, []Part{
		{Size: 16 * MiB, Type: "c", FS: "vfat", Label: LabelBoot,
			Files: map[string][]byte{"os-release": []byte("ID=balena-os\n"), "config.json": []byte(`{"from":"image"}`),
				"EFI/BOOT/grub.cfg": []byte("# balenaOS grub.cfg from resin-boot\n")}},
		{Size: 8 * MiB, Type: "83", RandSeed: 1},
		{Size: 8 * MiB, Type: "83", RandSeed: 2},
		{Size: 4 * MiB, Type: "83", FS: "ext4", Label: LabelState, Logical: true},
		{Size: 22 * MiB, Type: "83", FS: "ext4", Label: LabelData, Logical: true,
			Files: map[string][]byte{"resin-data/readme": []byte("data partition\n")}},
	})
}

// GenericAMD64 builds a 64 MiB image shaped like balenaOS for generic-amd64:
// GPT with the partitions named as their filesystems are labelled, resin-boot
// an EFI system partition holding the EFI grub's config.
func GenericAMD64(path string) (Image, error) {
	return BuildGPT(path, BalenaOSSize, []Part{
		{Size: 16 * MiB, Type: "U", FS: "vfat", Label: LabelBoot,
			Files: map[string][]byte{"os-release": []byte("ID=balena-os\n"), "config.json": []byte(`{"from":"image"}`),
				"EFI/BOOT/grub.cfg": []byte("# balenaOS grub.cfg from resin-boot\n")}},
		{Size: 8 * MiB, Type: "L", Label: LabelRootA, RandSeed: 1},
		{Size: 8 * MiB, Type: "L", Label: LabelRootB, RandSeed: 2},
		{Size: 4 * MiB, Type: "L", FS: "ext4", Label: LabelState},
		{Size: 22 * MiB, Type: "L", FS: "ext4", Label: LabelData,
			Files: map[string][]byte{"resin-data/readme": []byte("data partition\n")}},
	})
}

// MReadFile returns the content of name on the FAT filesystem at byte
// offset off of the image at path, read with mtools' mtype.
func MReadFile(path string, off int64, name string) ([]byte, error) {
	cmd := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", path, off), "::/"+strings.TrimPrefix(name, "/"))
	cmd.Env = append(cmd.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("mtype %s in %s: %w", name, filepath.Base(path), err)
	}
	return out, nil
}

// DebugfsCat returns the content of name on the ext4 filesystem in the file
// fsImage (a partition extracted from a disk), read with debugfs.
func DebugfsCat(fsImage, name string) ([]byte, error) {
	out, err := exec.Command("debugfs", "-R", "cat "+name, fsImage).Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs cat %s: %w", name, err)
	}
	return out, nil
}

// OldOS builds a disk of size bytes holding one ext4 partition labelled
// "old-root" with files (path on that filesystem → content): the system
// stage 2 runs on, with its migration directory.
func OldOS(path string, size int64, files map[string][]byte) (Image, error) {
	return Build(path, size, []Part{{Size: size - 2*MiB, Type: "83", FS: "ext4", Label: "old-root", Files: files}})
}

// FlasherFiles says what goes into a flasher image besides the balenaOS image.
type FlasherFiles struct {
	ImageName   string // under /opt on flash-rootA
	InternalCfg []byte // grub.cfg_internal on flash-boot; none when nil
	BootCode    []byte // written to the MBR boot code area (≤ 440 bytes)
	Core        []byte // written from sector 1 on
}

// Flasher builds an x86 flasher-shaped image at path around the raw balenaOS
// image file inner: flash-boot (vfat, the flasher's own grub.cfg), flash-rootA
// (ext4 holding /opt/<ImageName>), an extended partition with flash-data.
func Flasher(path, inner string, ff FlasherFiles) (Image, error) {
	data, err := os.ReadFile(inner)
	if err != nil {
		return Image{}, err
	}
	bootFiles := map[string][]byte{"EFI/BOOT/grub.cfg": []byte("# flasher grub.cfg\n")}
	if ff.InternalCfg != nil {
		bootFiles["grub.cfg_internal"] = ff.InternalCfg
	}
	rootSize := (int64(len(data))/MiB + 24) * MiB
	img, err := Build(path, 8*MiB+rootSize+8*MiB, []Part{
		{Size: 6 * MiB, Type: "c", FS: "vfat", Label: "flash-boot", Files: bootFiles},
		{Size: rootSize, Type: "83", FS: "ext4", Label: "flash-rootA",
			Files: map[string][]byte{"opt/" + ff.ImageName: data, "etc/os-release": []byte("ID=balena-os\n")}},
		{Size: 4 * MiB, Type: "83", FS: "ext4", Label: "flash-data", Logical: true},
	})
	if err != nil {
		return img, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return img, err
	}
	defer f.Close()
	if _, err := f.WriteAt(ff.BootCode, 0); err != nil {
		return img, err
	}
	if _, err := f.WriteAt(ff.Core, 512); err != nil {
		return img, err
	}
	return img, f.Sync()
}
