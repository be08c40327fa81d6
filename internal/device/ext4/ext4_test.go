package ext4_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/ext4"
)

// build makes an ext4 image with mkfs.ext4 -d from a tree of files and
// returns the image and the files.
func build(t *testing.T, mkfsArgs ...string) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	r := rand.New(rand.NewPCG(7, 7))
	big := make([]byte, 40<<20)
	for i := 0; i < len(big); i += 4096 {
		if i%(1<<20) < 512<<10 { // half random, half zeros
			for j := i; j < i+4096; j += 8 {
				v := r.Uint64()
				big[j], big[j+1], big[j+5] = byte(v), byte(v>>8), byte(v>>40)
			}
		}
	}
	files := map[string][]byte{
		"opt/resin-image-genericx86-64.resinos-img": big,
		"etc/os-release": []byte("ID=balena-os\n"),
		"etc/empty":      {},
		"a/b/c/deep.txt": []byte("deep"),
	}
	for i := range 600 { // enough names for an htree directory
		files[fmt.Sprintf("many/file-with-a-longish-name-%04d", i)] = []byte(fmt.Sprint(i))
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "fs.img")
	args := append([]string{"-q", "-F", "-d", root}, mkfsArgs...)
	if out, err := exec.Command("mkfs.ext4", append(args, img, "64M")...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	return img, files
}

func TestReadFiles(t *testing.T) {
	for _, args := range [][]string{nil, {"-b", "1024"}, {"-O", "^64bit"}, {"-b", "1024", "-O", "^64bit,^flex_bg"}} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			img, files := build(t, args...)
			f, _ := os.Open(img)
			defer f.Close()
			fsys, err := ext4.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range files {
				fl, err := fsys.Open(name)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := io.ReadAll(io.NewSectionReader(fl, 0, fl.Size()))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: %d bytes (err %v), want %d bytes equal", name, len(got), err, len(want))
				}
			}
			entries, err := fsys.ReadDir("/many")
			if err != nil || len(entries) != 600 {
				t.Fatalf("ReadDir(/many) = %d entries, %v", len(entries), err)
			}
			opt, err := fsys.ReadDir("/opt")
			if err != nil || len(opt) != 1 || opt[0].Name != "resin-image-genericx86-64.resinos-img" || opt[0].IsDir {
				t.Fatalf("ReadDir(/opt) = %+v, %v", opt, err)
			}
			if _, err := fsys.Open("/opt/missing"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing file: %v", err)
			}
			if _, err := fsys.Open("/etc"); err == nil {
				t.Error("opened a directory as a file")
			}
		})
	}
}

func TestNotExt4(t *testing.T) {
	if _, err := ext4.Open(bytes.NewReader(make([]byte, 4096))); !errors.Is(err, ext4.ErrNotExt4) {
		t.Fatalf("err = %v", err)
	}
}

func TestMetaBGRefused(t *testing.T) {
	img, _ := build(t, "-O", "meta_bg,^resize_inode")
	f, _ := os.Open(img)
	defer f.Close()
	if _, err := ext4.Open(f); !errors.Is(err, ext4.ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}
