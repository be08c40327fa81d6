package ext4

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// feature is an ext4 feature flag that decides whether a kernel may mount
// the file system for writing: incompat (no mount without it) and
// ro_compat (no read-write mount) flags. Compat flags never stop a mount.
type feature struct {
	name   string
	roComp bool
	bit    uint32
	since  [2]int // first kernel that mounts it; {0, 0}: none does
}

// features lists the incompat and ro_compat flags with the first Linux
// release that mounts a file system using them read-write.
var features = []feature{
	{"compression", false, 0x1, [2]int{}},
	{"filetype", false, 0x2, [2]int{2, 2}},
	{"needs_recovery", false, 0x4, [2]int{2, 2}},
	{"journal_dev", false, 0x8, [2]int{}},
	{"meta_bg", false, 0x10, [2]int{2, 6}},
	{"extent", false, 0x40, [2]int{2, 6}},
	{"64bit", false, 0x80, [2]int{2, 6}},
	{"mmp", false, 0x100, [2]int{3, 0}},
	{"flex_bg", false, 0x200, [2]int{2, 6}},
	{"ea_inode", false, 0x400, [2]int{4, 13}},
	{"dirdata", false, 0x1000, [2]int{}},
	{"metadata_csum_seed", false, 0x2000, [2]int{4, 4}},
	{"large_dir", false, 0x4000, [2]int{4, 13}},
	{"inline_data", false, 0x8000, [2]int{3, 8}},
	{"encrypt", false, 0x10000, [2]int{4, 1}},
	{"casefold", false, 0x20000, [2]int{5, 2}},
	{"sparse_super", true, 0x1, [2]int{2, 2}},
	{"large_file", true, 0x2, [2]int{2, 2}},
	{"huge_file", true, 0x8, [2]int{2, 6}},
	{"uninit_bg", true, 0x10, [2]int{2, 6}},
	{"dir_nlink", true, 0x20, [2]int{2, 6}},
	{"extra_isize", true, 0x40, [2]int{2, 6}},
	{"has_snapshot", true, 0x80, [2]int{}},
	{"quota", true, 0x100, [2]int{3, 6}},
	{"bigalloc", true, 0x200, [2]int{3, 2}},
	{"metadata_csum", true, 0x400, [2]int{3, 6}},
	{"replica", true, 0x800, [2]int{}},
	{"read-only", true, 0x1000, [2]int{}},
	{"project", true, 0x2000, [2]int{4, 5}},
	{"shared_blocks", true, 0x4000, [2]int{}},
	{"verity", true, 0x8000, [2]int{5, 4}},
	{"orphan_present", true, 0x10000, [2]int{5, 15}},
}

// Superblock is what stage 1 reads from an ext4 superblock (the 1024 bytes
// at offset 1024 of the file system).
type Superblock struct {
	BlockSize          int64
	FreeBytes          int64 // free blocks, reserved ones included
	Incompat, ROCompat uint32
	Label              string
}

// ParseSuperblock reads sb, the file system's superblock.
func ParseSuperblock(sb []byte) (Superblock, error) {
	le := binary.LittleEndian
	if len(sb) < 1024 || le.Uint16(sb[0x38:]) != 0xEF53 {
		return Superblock{}, ErrNotExt4
	}
	s := Superblock{BlockSize: 1024 << le.Uint32(sb[0x18:]), Incompat: le.Uint32(sb[0x60:]), ROCompat: le.Uint32(sb[0x64:])}
	free := uint64(le.Uint32(sb[0x0C:]))
	if s.Incompat&incompat64Bit != 0 {
		free |= uint64(le.Uint32(sb[0x158:])) << 32
	}
	s.FreeBytes = int64(free) * s.BlockSize
	s.Label = strings.TrimRight(string(sb[0x78:0x88]), "\x00")
	return s, nil
}

// Unmountable names the features of s that the Linux kernel release (as
// `uname -r` prints it) cannot mount read-write: too new for it, or
// mounted by no kernel at all (and bits no kernel knows).
func (s Superblock) Unmountable(release string) []string {
	kv := kernelVersion(release)
	var out []string
	for _, set := range []struct {
		ro    bool
		flags uint32
	}{{false, s.Incompat}, {true, s.ROCompat}} {
		known := uint32(0)
		for _, f := range features {
			if f.roComp != set.ro {
				continue
			}
			known |= f.bit
			if set.flags&f.bit == 0 {
				continue
			}
			switch {
			case f.since == [2]int{}:
				out = append(out, f.name+" (no kernel)")
			case kv[0] < f.since[0] || kv[0] == f.since[0] && kv[1] < f.since[1]:
				out = append(out, fmt.Sprintf("%s (Linux %d.%d)", f.name, f.since[0], f.since[1]))
			}
		}
		if unknown := set.flags &^ known; unknown != 0 {
			kind := "incompat"
			if set.ro {
				kind = "ro_compat"
			}
			out = append(out, fmt.Sprintf("unknown %s flags %#x", kind, unknown))
		}
	}
	sort.Strings(out)
	return out
}

// kernelVersion reads major and minor from a release ("5.10.103-v7l+").
func kernelVersion(release string) [2]int {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	var v [2]int
	for i := 0; i < 2 && i < len(f); i++ {
		v[i], _ = strconv.Atoi(f[i])
	}
	return v
}
