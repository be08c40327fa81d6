package blkdev

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// headSize is how much of each partition Heads keeps: what Probe reads.
const headSize = 2048

// tableHead is how much of the disk start Heads keeps: the MBR, a GPT
// header and its usual 128 entries.
const tableHead = 64 << 10

// Heads keeps, from a disk image written to it from its first byte on,
// what ReadTable and FindLabel read: the partition table (MBR with its EBR
// chain, or GPT) and the first bytes of every partition. Stage 1 sees an
// image once, as it streams out of gzip; through Heads it finds resin-boot
// and resin-data by the same rule stage 2 uses on the flashed disk.
type Heads struct {
	off     int64
	pending []span // not yet complete, by start
	done    []span
	err     error
}

type span struct {
	start int64
	buf   []byte
	n     int // bytes filled
	then  func(*Heads, span)
}

// NewHeads starts with the table at the image's start.
func NewHeads() *Heads {
	h := &Heads{}
	h.want(0, tableHead, (*Heads).table)
	return h
}

func (h *Heads) want(start int64, n int, then func(*Heads, span)) {
	if start < h.off {
		h.err = fmt.Errorf("the partition table points back to byte %d, already passed", start)
		return
	}
	h.pending = append(h.pending, span{start: start, buf: make([]byte, n), then: then})
	sort.Slice(h.pending, func(i, j int) bool { return h.pending[i].start < h.pending[j].start })
}

// Write takes the next bytes of the image.
func (h *Heads) Write(p []byte) (int, error) {
	end := h.off + int64(len(p))
	for i := 0; i < len(h.pending); {
		s := &h.pending[i]
		if s.start >= end {
			break
		}
		from := max(s.start+int64(s.n), h.off)
		to := min(s.start+int64(len(s.buf)), end)
		if to > from {
			copy(s.buf[from-s.start:], p[from-h.off:to-h.off])
			s.n = int(to - s.start)
		}
		if s.n < len(s.buf) {
			i++
			continue
		}
		done := *s
		h.pending = append(h.pending[:i], h.pending[i+1:]...)
		h.done = append(h.done, done)
		if done.then != nil {
			done.then(h, done) // may add spans further on
		}
	}
	h.off = end
	return len(p), nil
}

// table registers what the partition table at the start names.
func (h *Heads) table(s span) {
	b := s.buf
	if b[510] != 0x55 || b[511] != 0xAA {
		return // ReadTable says so
	}
	prim := mbrEntries(b)
	for _, p := range prim {
		if p.SysID == 0xEE {
			parts, err := ReadTable(h)
			if err != nil {
				return
			}
			for _, q := range parts {
				h.want(q.Start, headSize, nil)
			}
			return
		}
	}
	for _, p := range prim {
		if p.Extended {
			ext := p.Start
			h.want(ext, SectorSize, func(h *Heads, s span) { h.ebr(ext, s) })
			continue
		}
		h.want(p.Start, headSize, nil)
	}
}

// ebr registers the logical partition an extended boot record names, and
// the next record of the chain.
func (h *Heads) ebr(ext int64, s span) {
	if s.buf[510] != 0x55 || s.buf[511] != 0xAA {
		return
	}
	for i := range 2 {
		e := s.buf[446+16*i:]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * SectorSize
		if e[4] == 0 || binary.LittleEndian.Uint32(e[12:]) == 0 {
			continue
		}
		if i == 0 {
			h.want(s.start+start, headSize, nil)
		} else if next := ext + start; next > s.start {
			h.want(next, SectorSize, func(h *Heads, s span) { h.ebr(ext, s) })
		}
	}
}

// Err reports a table that could not be followed in one pass.
func (h *Heads) Err() error { return h.err }

// ReadAt serves what was kept; anything else is an error.
func (h *Heads) ReadAt(p []byte, off int64) (int, error) {
	for _, s := range h.done {
		if off >= s.start && off+int64(len(p)) <= s.start+int64(len(s.buf)) {
			return copy(p, s.buf[off-s.start:]), nil
		}
	}
	for _, s := range h.pending {
		if off >= s.start && off+int64(len(p)) <= s.start+int64(s.n) {
			return copy(p, s.buf[off-s.start:]), nil
		}
	}
	return 0, fmt.Errorf("bytes %d..%d of the image were not kept: %w", off, off+int64(len(p)), io.ErrUnexpectedEOF)
}
