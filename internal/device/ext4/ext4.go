// Package ext4 reads files out of an ext4 filesystem image without mounting
// it: enough of the format to walk directories and read a regular file
// through its extent tree. It is read-only and handles what mkfs.ext4 and
// Yocto produce (extents, 32- and 64-bit group descriptors, htree
// directories read linearly); files using the old block maps or inline data
// are refused with ErrUnsupported.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ErrUnsupported marks a valid filesystem feature this reader does not handle.
var ErrUnsupported = errors.New("ext4 feature not supported by this reader")

// ErrNotExt4 marks data without an ext2/3/4 superblock.
var ErrNotExt4 = errors.New("not an ext4 filesystem")

const (
	rootInode      = 2
	incompat64Bit  = 0x80
	incompatMetaBG = 0x10
	flagExtents    = 0x80000
	flagInlineData = 0x10000000
	extentMagic    = 0xF30A
	modeTypeMask   = 0xF000
	modeDir        = 0x4000
	modeRegular    = 0x8000
)

// FS is an ext4 filesystem read through an io.ReaderAt.
type FS struct {
	r              io.ReaderAt
	blockSize      int64
	inodesPerGroup uint32
	inodeSize      int64
	descSize       int64
	gdtStart       int64
}

// Open reads the superblock of the filesystem in r.
func Open(r io.ReaderAt) (*FS, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return nil, fmt.Errorf("ext4 superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != 0xEF53 {
		return nil, ErrNotExt4
	}
	f := &FS{r: r, blockSize: 1024 << le.Uint32(sb[0x18:]), inodesPerGroup: le.Uint32(sb[0x28:]),
		inodeSize: 128, descSize: 32}
	if le.Uint32(sb[0x4C:]) >= 1 {
		f.inodeSize = int64(le.Uint16(sb[0x58:]))
	}
	if le.Uint32(sb[0x60:])&incompatMetaBG != 0 {
		return nil, fmt.Errorf("meta_bg group descriptors: %w", ErrUnsupported)
	}
	if le.Uint32(sb[0x60:])&incompat64Bit != 0 {
		f.descSize = int64(le.Uint16(sb[0xFE:]))
	}
	f.gdtStart = (int64(le.Uint32(sb[0x14:])) + 1) * f.blockSize
	if f.inodesPerGroup == 0 || f.inodeSize < 128 || f.descSize < 32 {
		return nil, fmt.Errorf("%w: implausible superblock", ErrNotExt4)
	}
	return f, nil
}

// inode is the part of an on-disk inode the reader uses.
type inode struct {
	num   uint32
	mode  uint16
	size  int64
	flags uint32
	block [60]byte
}

func (f *FS) inode(n uint32) (inode, error) {
	group, index := int64((n-1)/f.inodesPerGroup), int64((n-1)%f.inodesPerGroup)
	desc := make([]byte, f.descSize)
	if _, err := f.r.ReadAt(desc, f.gdtStart+group*f.descSize); err != nil {
		return inode{}, fmt.Errorf("group descriptor %d: %w", group, err)
	}
	le := binary.LittleEndian
	table := int64(le.Uint32(desc[0x8:]))
	if f.descSize >= 64 {
		table |= int64(le.Uint32(desc[0x28:])) << 32
	}
	raw := make([]byte, 160)
	if _, err := f.r.ReadAt(raw[:128], table*f.blockSize+index*f.inodeSize); err != nil {
		return inode{}, fmt.Errorf("inode %d: %w", n, err)
	}
	in := inode{num: n, mode: le.Uint16(raw), flags: le.Uint32(raw[0x20:]),
		size: int64(le.Uint32(raw[0x4:])) | int64(le.Uint32(raw[0x6C:]))<<32}
	copy(in.block[:], raw[0x28:0x28+60])
	return in, nil
}

// File is an open regular file (or directory) of the filesystem.
type File struct {
	fs      *FS
	size    int64
	extents []extent
}

type extent struct {
	logical int64 // first block in the file
	length  int64 // blocks
	start   int64 // first block on disk
	unwrit  bool  // preallocated, reads as zeros
}

// Size is the file's length in bytes.
func (fl *File) Size() int64 { return fl.size }

// ReadAt reads file content; holes and unwritten extents read as zeros.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	if off >= fl.size {
		return 0, io.EOF
	}
	n := 0
	want := min(int64(len(p)), fl.size-off)
	for int64(n) < want {
		pos := off + int64(n)
		chunk := p[n:want]
		bs := fl.fs.blockSize
		lblock := pos / bs
		i := sort.Search(len(fl.extents), func(i int) bool { return fl.extents[i].logical+fl.extents[i].length > lblock })
		if i == len(fl.extents) || fl.extents[i].logical > lblock { // hole
			m := int64(len(chunk))
			if i < len(fl.extents) {
				m = min(m, fl.extents[i].logical*bs-pos)
			}
			clear(chunk[:m])
			n += int(m)
			continue
		}
		e := fl.extents[i]
		avail := (e.logical+e.length)*bs - pos
		m := min(int64(len(chunk)), avail)
		if e.unwrit {
			clear(chunk[:m])
		} else if _, err := fl.fs.r.ReadAt(chunk[:m], e.start*bs+(pos-e.logical*bs)); err != nil {
			return n, fmt.Errorf("ext4 read at %d: %w", pos, err)
		}
		n += int(m)
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (f *FS) openInode(in inode) (*File, error) {
	if in.flags&flagInlineData != 0 {
		return nil, fmt.Errorf("inode %d: inline data: %w", in.num, ErrUnsupported)
	}
	if in.flags&flagExtents == 0 {
		return nil, fmt.Errorf("inode %d: block map instead of extents: %w", in.num, ErrUnsupported)
	}
	fl := &File{fs: f, size: in.size}
	if err := f.walkExtents(in.block[:], &fl.extents, 0); err != nil {
		return nil, fmt.Errorf("inode %d: %w", in.num, err)
	}
	sort.Slice(fl.extents, func(i, j int) bool { return fl.extents[i].logical < fl.extents[j].logical })
	return fl, nil
}

// walkExtents collects the leaf extents of the tree node in b.
func (f *FS) walkExtents(b []byte, out *[]extent, level int) error {
	le := binary.LittleEndian
	if le.Uint16(b) != extentMagic || level > 5 {
		return errors.New("corrupt extent tree")
	}
	entries, depth := int(le.Uint16(b[2:])), le.Uint16(b[6:])
	if 12+entries*12 > len(b) {
		return errors.New("corrupt extent header")
	}
	for i := range entries {
		e := b[12+12*i : 24+12*i]
		if depth == 0 {
			length, unwrit := int64(le.Uint16(e[4:])), false
			if length > 32768 {
				length, unwrit = length-32768, true
			}
			*out = append(*out, extent{logical: int64(le.Uint32(e)), length: length,
				start: int64(le.Uint16(e[6:]))<<32 | int64(le.Uint32(e[8:])), unwrit: unwrit})
			continue
		}
		leaf := int64(le.Uint16(e[8:]))<<32 | int64(le.Uint32(e[4:]))
		node := make([]byte, f.blockSize)
		if _, err := f.r.ReadAt(node, leaf*f.blockSize); err != nil {
			return fmt.Errorf("extent node at block %d: %w", leaf, err)
		}
		if err := f.walkExtents(node, out, level+1); err != nil {
			return err
		}
	}
	return nil
}

// DirEntry is a name in a directory.
type DirEntry struct {
	Name  string
	Inode uint32
	IsDir bool
}

// ReadDir lists the directory at name ("/" is the root).
func (f *FS) ReadDir(name string) ([]DirEntry, error) {
	in, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if in.mode&modeTypeMask != modeDir {
		return nil, fmt.Errorf("%s: not a directory", name)
	}
	return f.readDir(in)
}

func (f *FS) readDir(in inode) ([]DirEntry, error) {
	fl, err := f.openInode(in)
	if err != nil {
		return nil, err
	}
	data := make([]byte, fl.size)
	if _, err := fl.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	le := binary.LittleEndian
	var out []DirEntry
	for off := 0; off+8 <= len(data); {
		ino, recLen, nameLen := le.Uint32(data[off:]), int(le.Uint16(data[off+4:])), int(data[off+6])
		if recLen < 8 || off+recLen > len(data) || 8+nameLen > recLen {
			return nil, fmt.Errorf("inode %d: corrupt directory entry at %d", in.num, off)
		}
		name := string(data[off+8 : off+8+nameLen])
		if ino != 0 && name != "." && name != ".." {
			out = append(out, DirEntry{Name: name, Inode: ino, IsDir: data[off+7] == 2})
		}
		off += recLen
	}
	return out, nil
}

func (f *FS) lookup(name string) (inode, error) {
	in, err := f.inode(rootInode)
	if err != nil {
		return inode{}, err
	}
	for _, part := range strings.Split(strings.Trim(path.Clean("/"+name), "/"), "/") {
		if part == "" {
			continue
		}
		if in.mode&modeTypeMask != modeDir {
			return inode{}, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		entries, err := f.readDir(in)
		if err != nil {
			return inode{}, err
		}
		found := false
		for _, e := range entries {
			if e.Name == part {
				if in, err = f.inode(e.Inode); err != nil {
					return inode{}, err
				}
				found = true
				break
			}
		}
		if !found {
			return inode{}, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
	}
	return in, nil
}

// Open opens the regular file at name.
func (f *FS) Open(name string) (*File, error) {
	in, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if in.mode&modeTypeMask != modeRegular {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return f.openInode(in)
}
