package testimg

import (
	"fmt"
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
			Files: map[string][]byte{"os-release": []byte("ID=balena-os\n"), "config.json": []byte(`{"from":"image"}`)}},
		{Size: 8 * MiB, Type: "83", RandSeed: 1},
		{Size: 8 * MiB, Type: "83", RandSeed: 2},
		{Size: 4 * MiB, Type: "83", FS: "ext4", Label: LabelState, Logical: true},
		{Size: 22 * MiB, Type: "83", FS: "ext4", Label: LabelData, Logical: true,
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
