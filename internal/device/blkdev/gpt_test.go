package blkdev_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

// A generic-amd64-shaped image made by sfdisk passes, with its partition
// names; each kind of damage is caught.
func TestCheckGPT(t *testing.T) {
	img, err := testimg.GenericAMD64(filepath.Join(t.TempDir(), "gpt.img"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := blkdev.CheckGPT(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "resin-boot resin-rootA resin-rootB resin-state resin-data" {
		t.Fatalf("partition names %q", got)
	}
	loc, err := blkdev.FindLabel(bytes.NewReader(good), parts, "resin-data")
	if err != nil || loc.Number != 5 || loc.Type != blkdev.FSExt4 {
		t.Fatalf("resin-data: %+v %v", loc, err)
	}
	// rootA has no filesystem: found by its GPT name alone
	if loc, err := blkdev.FindLabel(bytes.NewReader(good), parts, "resin-rootA"); err != nil || loc.Number != 2 {
		t.Fatalf("resin-rootA by GPT name: %+v %v", loc, err)
	}

	entriesLBA := int64(binary.LittleEndian.Uint64(good[512+72:]))
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"no protective MBR", func(b []byte) []byte { b[446+4] = 0x83; return b }, "no protective MBR"},
		{"header bit flip", func(b []byte) []byte { b[512+40] ^= 1; return b }, "header checksum"},
		{"entry bit flip", func(b []byte) []byte { b[entriesLBA*512+128+32] ^= 1; return b }, "partition entries checksum"},
		{"cut off", func(b []byte) []byte { return b[:len(b)-1<<20] }, "cut off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.damage(append([]byte(nil), good...))
			_, err := blkdev.CheckGPT(bytes.NewReader(b), int64(len(b)))
			if !errors.Is(err, blkdev.ErrBadGPT) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want ErrBadGPT with %q, got %v", tc.want, err)
			}
		})
	}
}
