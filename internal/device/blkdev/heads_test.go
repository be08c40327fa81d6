package blkdev_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// Streamed once through Heads, in chunks of any size, an image gives the
// partitions and labels that reading the whole file gives.
func TestHeadsFindsWhatTheWholeImageHas(t *testing.T) {
	dir := t.TempDir()
	inner, err := testimg.BalenaOS(filepath.Join(dir, "inner.img"))
	if err != nil {
		t.Fatal(err)
	}
	gpt, err := testimg.GenericAMD64(filepath.Join(dir, "gpt.img"))
	if err != nil {
		t.Fatal(err)
	}
	flasher, err := testimg.Flasher(filepath.Join(dir, "flasher.img"), inner.Path, testimg.FlasherFiles{ImageName: "inner.img"})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []testimg.Image{inner, gpt, flasher} {
		raw, err := os.ReadFile(img.Path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := blkdev.ReadTable(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{1 << 20, 32 << 10, 4093} {
			h := blkdev.NewHeads()
			if _, err := io.CopyBuffer(struct{ io.Writer }{h}, bytes.NewReader(raw), make([]byte, chunk)); err != nil {
				t.Fatal(err)
			}
			got, err := blkdev.ReadTable(h)
			if err != nil || h.Err() != nil {
				t.Fatalf("%s, chunks of %d: %v %v", filepath.Base(img.Path), chunk, err, h.Err())
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d partitions, want %d", filepath.Base(img.Path), len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s: partition %+v, want %+v", filepath.Base(img.Path), got[i], want[i])
				}
				if got[i].Extended {
					continue
				}
				gfs, err := blkdev.Probe(h, got[i].Start)
				wfs, _ := blkdev.Probe(bytes.NewReader(raw), want[i].Start)
				if err != nil || gfs != wfs {
					t.Errorf("%s partition %d: %+v %v, want %+v", filepath.Base(img.Path), got[i].Number, gfs, err, wfs)
				}
			}
		}
	}
}
