// Package blkdev reads what stage 2 needs from a disk without outside tools:
// the partition table (MBR with logical partitions, or GPT), filesystem types
// and labels from the superblocks, and the Linux ioctls that make the kernel
// see a freshly written table (BLKRRPART, BLKPG).
package blkdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SectorSize is the logical sector size partition tables are read with.
const SectorSize = 512

// ErrNoTable marks a disk without an MBR or GPT partition table.
var ErrNoTable = errors.New("no partition table")

// Partition is one entry of a partition table, in bytes.
type Partition struct {
	Number   int   // 1-4 primary, 5+ logical (MBR); 1+ (GPT)
	SysID    byte  // MBR type byte; 0 for GPT
	Start    int64 // offset on the disk
	Length   int64
	Extended bool     // an MBR extended container, not a filesystem
	Name     string   // GPT partition name ("resin-boot" on balenaOS); "" on MBR
	GUID     [16]byte // GPT unique partition GUID, as the table stores it; zero on MBR
}

// IsGPT reports whether p comes from a GPT (it has a partition GUID).
func (p Partition) IsGPT() bool { return p.GUID != [16]byte{} }

// End is the first byte after the partition.
func (p Partition) End() int64 { return p.Start + p.Length }

// ReadTable reads the partition table at the start of r.
func ReadTable(r io.ReaderAt) ([]Partition, error) {
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, ErrNoTable
	}
	prim := mbrEntries(mbr)
	for _, p := range prim {
		if p.SysID == 0xEE {
			return readGPT(r)
		}
	}
	var out []Partition
	for _, p := range prim {
		out = append(out, p)
		if p.Extended {
			logical, err := readLogical(r, p.Start)
			if err != nil {
				return nil, err
			}
			out = append(out, logical...)
		}
	}
	return out, nil
}

func mbrEntries(sector []byte) []Partition {
	var out []Partition
	for i := range 4 {
		e := sector[446+16*i : 446+16*(i+1)]
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * SectorSize
		length := int64(binary.LittleEndian.Uint32(e[12:])) * SectorSize
		if typ == 0 || length == 0 {
			continue
		}
		out = append(out, Partition{Number: i + 1, SysID: typ, Start: start, Length: length,
			Extended: typ == 0x05 || typ == 0x0F || typ == 0x85})
	}
	return out
}

// readLogical follows the EBR chain of the extended partition at ext.
func readLogical(r io.ReaderAt, ext int64) ([]Partition, error) {
	var out []Partition
	ebr := make([]byte, SectorSize)
	for off, n := ext, 5; ; n++ {
		if n > 5+128 {
			return nil, fmt.Errorf("extended partition at %d: EBR chain too long or looping", ext)
		}
		if _, err := r.ReadAt(ebr, off); err != nil {
			return nil, fmt.Errorf("read EBR at %d: %w", off, err)
		}
		if ebr[510] != 0x55 || ebr[511] != 0xAA {
			return nil, fmt.Errorf("EBR at %d: bad signature", off)
		}
		var next int64
		for _, e := range mbrEntries(ebr) {
			switch e.Number {
			case 1:
				out = append(out, Partition{Number: n, SysID: e.SysID, Start: off + e.Start, Length: e.Length})
			case 2:
				next = ext + e.Start
			}
		}
		if next == 0 || next <= off {
			return out, nil
		}
		off = next
	}
}
