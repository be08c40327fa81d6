// Package testimg builds small disk images shaped like balenaOS images and x86
// flasher images for tests, with the real tools (sfdisk, mkfs.vfat, mkfs.ext4,
// mtools) on plain files: no loop devices or root needed.
package testimg

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// Part describes one partition to build.
type Part struct {
	Size     int64             // bytes, a multiple of MiB
	Type     string            // sfdisk type: "c" (FAT32 LBA), "83", … (MBR); "U" (EFI system), "L" (Linux) … (GPT)
	FS       string            // "vfat", "ext4", or "" for seeded random bytes
	Label    string            // filesystem label, and the partition name on GPT
	Files    map[string][]byte // files to put in the filesystem (path → content)
	Logical  bool              // inside the extended partition
	RandSeed uint64            // seed for FS == ""
}

// Image is a built image and its partition table as read back.
type Image struct {
	Path  string
	Size  int64
	Parts []blkdev.Partition
}

// Build writes an MBR disk image of size bytes at path holding parts in order
// (primary ones first, then logical ones inside one extended partition).
func Build(path string, size int64, parts []Part) (Image, error) {
	return build(path, size, parts, false)
}

// BuildGPT writes a GPT disk image (protective MBR, primary and backup GPT)
// of size bytes at path holding parts in order, each named by its Label.
func BuildGPT(path string, size int64, parts []Part) (Image, error) {
	return build(path, size, parts, true)
}

func build(path string, size int64, parts []Part, gpt bool) (Image, error) {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return Image{}, err
	}
	if err := os.Truncate(path, size); err != nil {
		return Image{}, err
	}
	if err := partition(path, parts, gpt); err != nil {
		return Image{}, err
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
	var fsParts []blkdev.Partition
	for _, p := range table {
		if !p.Extended {
			fsParts = append(fsParts, p)
		}
	}
	if len(fsParts) != len(parts) {
		return Image{}, fmt.Errorf("%s: sfdisk made %d partitions, want %d", path, len(fsParts), len(parts))
	}
	for i, p := range parts {
		data, err := Content(filepath.Dir(path), fsParts[i].Length, p)
		if err != nil {
			return Image{}, err
		}
		if _, err := f.WriteAt(data, fsParts[i].Start); err != nil {
			return Image{}, err
		}
	}
	return Image{Path: path, Size: size, Parts: table}, f.Sync()
}

func partition(path string, parts []Part, gpt bool) error {
	var script strings.Builder
	if gpt {
		script.WriteString("label: gpt\nunit: sectors\n")
		for _, p := range parts {
			fmt.Fprintf(&script, "size=%d, type=%s, name=%q\n", p.Size/512, p.Type, p.Label)
		}
	} else {
		script.WriteString("label: dos\nunit: sectors\n")
	}
	ext := false
	for _, p := range parts {
		if gpt {
			break
		}
		if p.Logical && !ext {
			script.WriteString("type=5\n") // extended: rest of the disk
			ext = true
		}
		fmt.Fprintf(&script, "size=%d, type=%s\n", p.Size/512, p.Type)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", path)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk %s: %w: %s", path, err, out)
	}
	return nil
}

// Content returns the bytes of one partition of the given length.
func Content(tmp string, length int64, p Part) ([]byte, error) {
	switch p.FS {
	case "":
		r := rand.New(rand.NewPCG(p.RandSeed, 1))
		b := make([]byte, length)
		for i := 0; i+8 <= len(b); i += 8 {
			v := r.Uint64()
			copy(b[i:], []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24), byte(v >> 32), byte(v >> 40), byte(v >> 48), byte(v >> 56)})
		}
		return b, nil
	case "vfat":
		return vfat(tmp, length, p)
	case "ext4":
		return ext4(tmp, length, p)
	}
	return nil, fmt.Errorf("testimg: unknown filesystem %q", p.FS)
}

func vfat(tmp string, length int64, p Part) ([]byte, error) {
	img, err := os.CreateTemp(tmp, "vfat-*.img")
	if err != nil {
		return nil, err
	}
	img.Close()
	defer os.Remove(img.Name())
	os.Remove(img.Name())
	if err := run("mkfs.vfat", "-C", "-n", p.Label, img.Name(), fmt.Sprint(length/1024)); err != nil {
		return nil, err
	}
	dir, err := WriteTree(tmp, p.Files)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if len(p.Files) > 0 {
		entries, _ := filepath.Glob(filepath.Join(dir, "*"))
		args := append([]string{"-s", "-i", img.Name()}, entries...)
		if err := run("mcopy", append(args, "::/")...); err != nil {
			return nil, err
		}
	}
	return os.ReadFile(img.Name())
}

func ext4(tmp string, length int64, p Part) ([]byte, error) {
	dir, err := WriteTree(tmp, p.Files)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir + ".img")
	defer os.Remove(img)
	if err := run("mkfs.ext4", "-q", "-F", "-L", p.Label, "-d", dir, img, fmt.Sprintf("%dk", length/1024)); err != nil {
		return nil, err
	}
	return os.ReadFile(img)
}

// WriteTree writes files (slash path → content) into a new temporary
// directory under tmp and returns it; the caller removes it.
func WriteTree(tmp string, files map[string][]byte) (string, error) {
	dir, err := os.MkdirTemp(tmp, "tree-*")
	if err != nil {
		return "", err
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return dir, err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return dir, err
		}
	}
	return dir, nil
}

func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out.String())
	}
	return nil
}
