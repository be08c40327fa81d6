package blkdev

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Filesystem types Probe recognises.
const (
	FSUnknown = ""
	FSVfat    = "vfat"
	FSExt4    = "ext4"
	FSExt2    = "ext2" // ext2/ext3: no extents
)

// FS is what the superblock of a partition says.
type FS struct {
	Type  string
	Label string
}

// Probe reads the filesystem type and label at offset off of r. An
// unrecognised filesystem gives FS{} and no error.
func Probe(r io.ReaderAt, off int64) (FS, error) {
	buf := make([]byte, 2048)
	if n, err := r.ReadAt(buf, off); n < len(buf) {
		return FS{}, fmt.Errorf("read superblock at %d: %w", off, err)
	}
	if fs, ok := probeExt(buf[1024:]); ok {
		return fs, nil
	}
	if fs, ok := probeFAT(buf[:512]); ok {
		return fs, nil
	}
	return FS{}, nil
}

func probeExt(sb []byte) (FS, bool) {
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return FS{}, false
	}
	typ := FSExt2
	if binary.LittleEndian.Uint32(sb[0x60:])&0x40 != 0 { // INCOMPAT_EXTENTS
		typ = FSExt4
	}
	return FS{Type: typ, Label: cString(sb[0x78:0x88])}, true
}

func probeFAT(bs []byte) (FS, bool) {
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return FS{}, false
	}
	var label []byte
	switch {
	case bytes.HasPrefix(bs[0x52:], []byte("FAT32")):
		label = bs[0x47:0x52]
	case bytes.HasPrefix(bs[0x36:], []byte("FAT1")):
		label = bs[0x2B:0x36]
	default:
		return FS{}, false
	}
	l := strings.TrimRight(string(label), " \x00")
	if l == "NO NAME" {
		l = ""
	}
	return FS{Type: FSVfat, Label: l}, true
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Located is a partition together with its filesystem.
type Located struct {
	Partition
	FS
}

// FindLabel returns the partition of disk r whose filesystem label is label
// (compared without case, as FAT stores labels upper-case on some systems),
// or on GPT whose partition name is label.
func FindLabel(r io.ReaderAt, parts []Partition, label string) (Located, error) {
	var seen []string
	for _, p := range parts {
		if p.Extended {
			continue
		}
		fs, err := Probe(r, p.Start)
		if err != nil {
			return Located{}, fmt.Errorf("partition %d: %w", p.Number, err)
		}
		if strings.EqualFold(fs.Label, label) || p.Name == label {
			return Located{p, fs}, nil
		}
		seen = append(seen, fmt.Sprintf("%d=%s:%q", p.Number, fs.Type, fs.Label))
		if p.Name != "" {
			seen[len(seen)-1] += fmt.Sprintf("(GPT %q)", p.Name)
		}
	}
	return Located{}, fmt.Errorf("no partition labelled %q (found %s)", label, strings.Join(seen, " "))
}
