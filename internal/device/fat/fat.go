// Package fat reads files out of a FAT12/16/32 filesystem image without
// mounting it: long (VFAT) and short names, cluster chains. Read-only.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"
)

// ErrNotFAT marks data without a FAT boot sector.
var ErrNotFAT = errors.New("not a FAT filesystem")

// FS is a FAT filesystem read through an io.ReaderAt.
type FS struct {
	r           io.ReaderAt
	bits        int // 12, 16 or 32
	clusterSize int64
	fatStart    int64
	rootStart   int64 // FAT12/16 fixed root directory
	rootSize    int64
	rootCluster uint32 // FAT32
	dataStart   int64
}

// Open reads the boot sector of the filesystem in r.
func Open(r io.ReaderAt) (*FS, error) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, 0); err != nil {
		return nil, fmt.Errorf("FAT boot sector: %w", err)
	}
	le := binary.LittleEndian
	sector := int64(le.Uint16(bs[0x0B:]))
	perCluster := int64(bs[0x0D])
	reserved, fats := int64(le.Uint16(bs[0x0E:])), int64(bs[0x10])
	rootEntries := int64(le.Uint16(bs[0x11:]))
	total := int64(le.Uint16(bs[0x13:]))
	if total == 0 {
		total = int64(le.Uint32(bs[0x20:]))
	}
	fatSize := int64(le.Uint16(bs[0x16:]))
	if fatSize == 0 {
		fatSize = int64(le.Uint32(bs[0x24:]))
	}
	if bs[510] != 0x55 || bs[511] != 0xAA || sector < 512 || sector&(sector-1) != 0 || perCluster == 0 || fats == 0 {
		return nil, ErrNotFAT
	}
	f := &FS{r: r, clusterSize: sector * perCluster, fatStart: reserved * sector}
	f.rootStart = (reserved + fats*fatSize) * sector
	f.rootSize = rootEntries * 32
	f.dataStart = f.rootStart + (f.rootSize+sector-1)/sector*sector
	clusters := (total*sector - f.dataStart) / f.clusterSize
	switch {
	case clusters < 4085:
		f.bits = 12
	case clusters < 65525:
		f.bits = 16
	default:
		f.bits = 32
		f.rootCluster = le.Uint32(bs[0x2C:])
	}
	return f, nil
}

// next returns the cluster after c in its chain, and whether c was the last.
func (f *FS) next(c uint32) (uint32, bool, error) {
	var buf [4]byte
	le := binary.LittleEndian
	var v uint32
	switch f.bits {
	case 12:
		if _, err := f.r.ReadAt(buf[:2], f.fatStart+int64(c)*3/2); err != nil {
			return 0, false, err
		}
		v = uint32(le.Uint16(buf[:]))
		if c&1 == 1 {
			v >>= 4
		}
		v &= 0xFFF
		return v, v >= 0xFF8, nil
	case 16:
		if _, err := f.r.ReadAt(buf[:2], f.fatStart+int64(c)*2); err != nil {
			return 0, false, err
		}
		v = uint32(le.Uint16(buf[:]))
		return v, v >= 0xFFF8, nil
	}
	if _, err := f.r.ReadAt(buf[:], f.fatStart+int64(c)*4); err != nil {
		return 0, false, err
	}
	v = le.Uint32(buf[:]) & 0x0FFFFFFF
	return v, v >= 0x0FFFFFF8, nil
}

// chain reads the cluster chain from first, at most limit bytes (<0: all).
func (f *FS) chain(first uint32, limit int64) ([]byte, error) {
	var out []byte
	for c, n := first, 0; c >= 2; n++ {
		if n > 1<<22 {
			return nil, errors.New("FAT cluster chain loops")
		}
		buf := make([]byte, f.clusterSize)
		if _, err := f.r.ReadAt(buf, f.dataStart+int64(c-2)*f.clusterSize); err != nil {
			return nil, fmt.Errorf("cluster %d: %w", c, err)
		}
		out = append(out, buf...)
		if limit >= 0 && int64(len(out)) >= limit {
			return out[:limit], nil
		}
		next, last, err := f.next(c)
		if err != nil || last {
			return out, err
		}
		c = next
	}
	return out, nil
}

// entry is a directory entry.
type entry struct {
	name, short string
	dir         bool
	cluster     uint32
	size        int64
}

func (f *FS) dir(cluster uint32) ([]entry, error) {
	var data []byte
	var err error
	if cluster == 0 && f.bits != 32 {
		data = make([]byte, f.rootSize)
		_, err = f.r.ReadAt(data, f.rootStart)
	} else {
		if cluster == 0 {
			cluster = f.rootCluster
		}
		data, err = f.chain(cluster, -1)
	}
	if err != nil {
		return nil, fmt.Errorf("FAT directory: %w", err)
	}
	return parseDir(data), nil
}

func parseDir(data []byte) []entry {
	var out []entry
	var long []uint16
	le := binary.LittleEndian
	for off := 0; off+32 <= len(data); off += 32 {
		e := data[off : off+32]
		switch {
		case e[0] == 0:
			return out
		case e[0] == 0xE5:
			long = nil
			continue
		case e[11] == 0x0F: // long-name part; parts come last-first
			var part []uint16
			for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
				for i := r[0]; i < r[1]; i += 2 {
					part = append(part, le.Uint16(e[i:]))
				}
			}
			long = append(part, long...)
			continue
		case e[11]&0x08 != 0: // volume label
			long = nil
			continue
		}
		short := strings.TrimRight(string(e[0:8]), " ")
		if ext := strings.TrimRight(string(e[8:11]), " "); ext != "" {
			short += "." + ext
		}
		name := short
		if long != nil {
			name = strings.TrimRight(string(utf16.Decode(trimLong(long))), "\x00")
		}
		long = nil
		out = append(out, entry{name: name, short: short, dir: e[11]&0x10 != 0,
			cluster: uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:])), size: int64(le.Uint32(e[28:]))})
	}
	return out
}

func trimLong(s []uint16) []uint16 {
	for i, c := range s {
		if c == 0 || c == 0xFFFF {
			return s[:i]
		}
	}
	return s
}

// ReadFile returns the content of the file at name (case-insensitive, as FAT is).
func (f *FS) ReadFile(name string) ([]byte, error) {
	var cluster uint32
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '/' })
	for i, part := range parts {
		entries, err := f.dir(cluster)
		if err != nil {
			return nil, err
		}
		var found *entry
		for j := range entries {
			if strings.EqualFold(entries[j].name, part) || strings.EqualFold(entries[j].short, part) {
				found = &entries[j]
				break
			}
		}
		switch {
		case found == nil:
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		case i < len(parts)-1 && !found.dir:
			return nil, fmt.Errorf("%s: %s is not a directory", name, part)
		case i == len(parts)-1:
			if found.dir {
				return nil, fmt.Errorf("%s: is a directory", name)
			}
			if found.size == 0 {
				return []byte{}, nil
			}
			return f.chain(found.cluster, found.size)
		}
		cluster = found.cluster
	}
	return nil, fmt.Errorf("%q: %w", name, fs.ErrNotExist)
}

// Bits is the FAT width: 12, 16 or 32.
func (f *FS) Bits() int { return f.bits }
