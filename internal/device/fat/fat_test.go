package fat_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/fat"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

func TestReadFile(t *testing.T) {
	big := bytes.Repeat([]byte("grub menuentry 0123456789\n"), 20000) // spans many clusters
	files := map[string][]byte{
		"EFI/BOOT/grub.cfg":            []byte("set timeout=3\n"),
		"grub/grub.cfg":                []byte("legacy\n"),
		"a long file name.Config.json": []byte(`{"a":1}`),
		"SHORT.TXT":                    []byte("short"),
		"big.bin":                      big,
		"empty":                        {},
	}
	for i := range 40 { // more entries than one cluster of directory
		files[fmt.Sprintf("dir/entry-number-%02d-with-long-name.txt", i)] = []byte(fmt.Sprint(i))
	}
	for _, size := range []int64{4 * testimg.MiB, 16 * testimg.MiB, 64 * testimg.MiB} { // FAT12, FAT16, FAT32
		t.Run(fmt.Sprint(size>>20, "MiB"), func(t *testing.T) {
			data, err := testimg.Content(t.TempDir(), size, testimg.Part{FS: "vfat", Label: "flash-boot", Files: files})
			if err != nil {
				t.Fatal(err)
			}
			if size == 64*testimg.MiB {
				// mkfs.vfat picks FAT16 for 64 MiB unless told; rebuild as FAT32.
				data = fat32(t, size, files)
			}
			fsys, err := fat.Open(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if want := map[int64]int{4: 12, 16: 16, 64: 32}[size>>20]; fsys.Bits() != want {
				t.Fatalf("FAT%d, want FAT%d", fsys.Bits(), want)
			}
			for name, want := range files {
				got, err := fsys.ReadFile(name)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
				}
			}
			if got, err := fsys.ReadFile("efi/boot/GRUB.CFG"); err != nil || string(got) != "set timeout=3\n" {
				t.Errorf("case-insensitive lookup: %q %v", got, err)
			}
			if _, err := fsys.ReadFile("missing/x"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing: %v", err)
			}
		})
	}
	if _, err := fat.Open(bytes.NewReader(make([]byte, 1024))); !errors.Is(err, fat.ErrNotFAT) {
		t.Errorf("zeros: %v", err)
	}
}

func fat32(t *testing.T, size int64, files map[string][]byte) []byte {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "fat32.img")
	if out, err := runOut("mkfs.vfat", "-F", "32", "-C", img, fmt.Sprint(size/1024)); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	src, err := testimg.WriteTree(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(src, "*"))
	if out, err := runOut("mcopy", append(append([]string{"-s", "-i", img}, entries...), "::/")...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	data, _ := os.ReadFile(img)
	return data
}
