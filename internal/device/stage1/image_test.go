package stage1

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// genericAMD64 returns a raw generic-amd64-shaped GPT image and its SHA-256.
func genericAMD64(t *testing.T) ([]byte, string) {
	t.Helper()
	img, err := testimg.GenericAMD64(filepath.Join(t.TempDir(), "generic-amd64.img"))
	if err != nil {
		t.Fatal(err)
	}
	raw := mustRead(t, img.Path)
	sum := sha256.Sum256(raw)
	return raw, hex.EncodeToString(sum[:])
}

// The three ways people have an image: raw .img (compressed once, next to
// it), .img.gz, .zip; a GPT image is checked in each.
func TestImageForms(t *testing.T) {
	static := buildStatic(t)
	raw, sum := genericAMD64(t)
	const name = "balena-cloud-fleet-generic-amd64-6.0.13-v16.4.0.img"
	for _, tc := range []struct {
		form, file string
		data       []byte
		gzFile     string // what stage 2 reads
	}{
		{"raw", name, raw, name + ".gz"},
		{"gzip", name + ".gz", gz(raw), name + ".gz"},
		{"zip", "download.zip", zipImage(t, raw, name), name + ".gz"},
	} {
		t.Run(tc.form, func(t *testing.T) {
			d := newDevice(t, fixtures[5], static)
			d.cfg.NoSetup = true
			d.cfg.ImageName = filepath.Join(d.home, tc.file)
			d.write(d.cfg.ImageName, tc.data)
			if _, err := d.run(); err != nil {
				t.Fatalf("%v\n%s", err, d.log.String())
			}
			s2 := loadS2(t, d)
			if s2.ImageFile != filepath.Join(d.home, tc.gzFile) || s2.ImageSHA256 != sum {
				t.Fatalf("stage 2 gets %s %s, want %s %s", s2.ImageFile, s2.ImageSHA256, tc.gzFile, sum)
			}
			if !bytes.Equal(gunzip(t, mustRead(t, d.path(s2.ImageFile))), raw) {
				t.Fatal("the gzip stage 2 reads does not hold the image")
			}
			if !strings.Contains(d.log.String(), "GPT with 5 partitions, checksums and size consistent") {
				t.Errorf("the GPT was not checked:\n%s", d.log.String())
			}
			if tc.form == "raw" && !bytes.Equal(mustRead(t, d.path(d.cfg.ImageName)), raw) {
				t.Error("the raw image was changed")
			}
		})
	}
}

// A run that fails after compressing a raw image removes the gzip it wrote.
func TestRawImageCompressionIsUndone(t *testing.T) {
	d := newDevice(t, fixtures[5], buildStatic(t))
	raw, _ := genericAMD64(t)
	d.cfg.ImageName = filepath.Join(d.home, "balena-cloud-fleet-generic-amd64-6.0.13-v16.4.0.img")
	d.write(d.cfg.ImageName, raw)
	if err := os.Remove(d.path(d.cfg.ImageName + ".gz")); err != nil { // the fixture's own
		t.Fatal(err)
	}
	d.host.fail = map[string]error{"mkinitramfs": errors.New("exit status 1")}
	if _, err := d.run(); !errors.Is(err, ErrInitramfs) {
		t.Fatalf("want ErrInitramfs, got %v", err)
	}
	if _, err := os.Stat(d.path(d.cfg.ImageName + ".gz")); !os.IsNotExist(err) {
		t.Fatalf("the compressed image is left behind: %v", err)
	}
	if !bytes.Equal(mustRead(t, d.path(d.cfg.ImageName)), raw) {
		t.Fatal("the raw image was changed")
	}
}

// Damaged GPT images and files that are no image are refused before
// anything changes.
func TestBadImagesRefused(t *testing.T) {
	static := buildStatic(t)
	raw, _ := genericAMD64(t)
	entries := int(raw[512+72]) * 512
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"GPT header damaged", gz(flip(raw, 512+48)), "header checksum"},
		{"GPT entries damaged", gz(flip(raw, entries+32)), "partition entries checksum"},
		{"GPT image cut off", raw[:len(raw)-4<<20], "cut off"},
		{"a text file", []byte(strings.Repeat("not an image\n", 100)), "neither a disk image (.img), gzip (.img.gz) nor zip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, fixtures[5], static)
			d.cfg.ImageName = filepath.Join(d.home, "balena-cloud-fleet-generic-amd64-6.0.13-v16.4.0.img.gz")
			d.write(d.cfg.ImageName, tc.data)
			before := d.tree(t)
			_, err := d.run()
			if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want ErrImage with %q, got %v", tc.want, err)
			}
			if strings.Contains(tc.name, "GPT") && !errors.Is(err, blkdev.ErrBadGPT) {
				t.Errorf("not marked ErrBadGPT: %v", err)
			}
			if diff := diffSnapshots(before, d.tree(t)); len(diff) > 0 {
				t.Fatalf("a refused run changed the device: %v", diff)
			}
		})
	}
}

func flip(b []byte, off int) []byte {
	c := append([]byte(nil), b...)
	c[off] ^= 0x40
	return c
}
