package blkdev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// ErrBadGPT marks a GUID partition table that is damaged or inconsistent.
var ErrBadGPT = errors.New("bad GPT")

// gptHeader is the part of the GPT header this package uses.
type gptHeader struct {
	alternate, firstUsable, lastUsable int64 // LBAs
	entriesLBA                         int64
	count, entrySize                   int
	entriesCRC                         uint32
}

// readGPTHeader reads and checks the primary header at LBA 1.
func readGPTHeader(r io.ReaderAt) (gptHeader, error) {
	hdr := make([]byte, SectorSize)
	if _, err := r.ReadAt(hdr, SectorSize); err != nil {
		return gptHeader{}, fmt.Errorf("read GPT header: %w", err)
	}
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return gptHeader{}, fmt.Errorf("protective MBR without GPT header: %w", ErrNoTable)
	}
	le := binary.LittleEndian
	h := gptHeader{
		alternate: int64(le.Uint64(hdr[32:])), firstUsable: int64(le.Uint64(hdr[40:])), lastUsable: int64(le.Uint64(hdr[48:])),
		entriesLBA: int64(le.Uint64(hdr[72:])), count: int(le.Uint32(hdr[80:])), entrySize: int(le.Uint32(hdr[84:])),
		entriesCRC: le.Uint32(hdr[88:]),
	}
	if h.entrySize < 128 || h.entrySize%8 != 0 || h.count < 1 || h.count > 1024 {
		return h, fmt.Errorf("%w: implausible partition entries (%d of %d bytes)", ErrBadGPT, h.count, h.entrySize)
	}
	return h, nil
}

func readGPT(r io.ReaderAt) ([]Partition, error) {
	h, err := readGPTHeader(r)
	if err != nil {
		return nil, err
	}
	parts, _, err := readGPTEntries(r, h)
	return parts, err
}

// readGPTEntries returns the used entries and the raw entry array.
func readGPTEntries(r io.ReaderAt, h gptHeader) ([]Partition, []byte, error) {
	buf := make([]byte, h.count*h.entrySize)
	if _, err := r.ReadAt(buf, h.entriesLBA*SectorSize); err != nil {
		return nil, nil, fmt.Errorf("read GPT entries: %w", err)
	}
	var out []Partition
	for i := range h.count {
		e := buf[i*h.entrySize : (i+1)*h.entrySize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		p := Partition{Number: i + 1, Start: first * SectorSize, Length: (last - first + 1) * SectorSize, Name: gptName(e[56:128])}
		copy(p.GUID[:], e[16:32])
		out = append(out, p)
	}
	return out, buf, nil
}

// gptName decodes the UTF-16LE partition name, up to its first NUL.
func gptName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// CheckGPT verifies a GPT disk image of size bytes whose start r holds: a
// protective MBR, the header and entry checksums, every partition inside the
// usable area and apart from the others, and the backup header's place
// inside the image (a shorter file was cut off). It returns the partitions.
func CheckGPT(r io.ReaderAt, size int64) ([]Partition, error) {
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	protective := false
	for _, p := range mbrEntries(mbr) {
		protective = protective || p.SysID == 0xEE
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA || !protective {
		return nil, fmt.Errorf("%w: no protective MBR (a partition of type 0xEE)", ErrBadGPT)
	}
	hdr := make([]byte, SectorSize)
	if _, err := r.ReadAt(hdr, SectorSize); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	hsize := int(binary.LittleEndian.Uint32(hdr[12:]))
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) || hsize < 92 || hsize > SectorSize {
		return nil, fmt.Errorf("%w: no GPT header after the protective MBR", ErrBadGPT)
	}
	want := binary.LittleEndian.Uint32(hdr[16:])
	h := append([]byte(nil), hdr[:hsize]...)
	copy(h[16:20], []byte{0, 0, 0, 0})
	if got := crc32.ChecksumIEEE(h); got != want {
		return nil, fmt.Errorf("%w: header checksum %08x, the header says %08x: the image is damaged", ErrBadGPT, got, want)
	}
	gh, err := readGPTHeader(r)
	if err != nil {
		return nil, err
	}
	parts, raw, err := readGPTEntries(r, gh)
	if err != nil {
		return nil, err
	}
	if got := crc32.ChecksumIEEE(raw); got != gh.entriesCRC {
		return nil, fmt.Errorf("%w: partition entries checksum %08x, the header says %08x: the image is damaged", ErrBadGPT, got, gh.entriesCRC)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: the GPT has no partitions", ErrBadGPT)
	}
	if end := (gh.alternate + 1) * SectorSize; end > size {
		return nil, fmt.Errorf("%w: the backup GPT header belongs at byte %d but the image has only %d bytes: it was cut off, copy or download it again", ErrBadGPT, end-SectorSize, size)
	}
	for i, p := range parts {
		first, last := p.Start/SectorSize, p.End()/SectorSize-1
		if last < first || first < gh.firstUsable || last > gh.lastUsable {
			return nil, fmt.Errorf("%w: partition %d (%q) lies outside the usable sectors %d–%d", ErrBadGPT, p.Number, p.Name, gh.firstUsable, gh.lastUsable)
		}
		for _, q := range parts[:i] {
			if p.Start < q.End() && q.Start < p.End() {
				return nil, fmt.Errorf("%w: partitions %d and %d overlap", ErrBadGPT, q.Number, p.Number)
			}
		}
	}
	return parts, nil
}
