package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
)

// depth is the number of buffers in flight between the pipeline stages.
const depth = 4

type chunk struct {
	buf []byte
	n   int
}

// pipeline decompresses src, hashes it and writes it to dst at offset 0, each
// in its own goroutine, so the slowest stage sets the pace.
func pipeline(ctx context.Context, src io.Reader, dst *os.File, opts Options) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pool := make(chan []byte, depth)
	for range depth {
		pool <- alignedBuf(opts.blockSize())
	}
	toHash := make(chan chunk, depth)
	toWrite := make(chan chunk, depth)
	var readErr error
	go func() {
		defer close(toHash)
		readErr = produce(ctx, src, pool, toHash)
		if readErr != nil {
			cancel()
		}
	}()
	h := sha256.New()
	go func() {
		defer close(toWrite)
		for c := range toHash {
			h.Write(c.buf[:c.n])
			toWrite <- c // toWrite has room for every buffer in the pool
		}
	}()
	var off int64
	var writeErr error
	p := newProgress("flashed", opts.Size, opts.Log)
	for c := range toWrite {
		if writeErr == nil {
			if _, writeErr = dst.WriteAt(c.buf[:c.n], off); writeErr != nil {
				cancel()
			}
			off += int64(c.n)
			p.Write(c.buf[:c.n])
		}
		pool <- c.buf
	}
	res := Result{Size: off, SHA256: hex.EncodeToString(h.Sum(nil))}
	switch {
	case writeErr != nil:
		return res, fmt.Errorf("write: %w", writeErr)
	case readErr != nil:
		return res, fmt.Errorf("decompress: %w", readErr)
	}
	return res, ctx.Err()
}

// produce fills buffers from the pool with src until EOF or cancellation.
func produce(ctx context.Context, src io.Reader, pool chan []byte, out chan<- chunk) error {
	for {
		var buf []byte
		select {
		case buf = <-pool:
		case <-ctx.Done():
			return ctx.Err()
		}
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			out <- chunk{buf, n}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readPipeline reads size bytes of f in one goroutine and feeds them to w in
// another.
func readPipeline(ctx context.Context, f *os.File, size int64, bs int, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pool := make(chan []byte, depth)
	for range depth {
		pool <- alignedBuf(bs)
	}
	out := make(chan chunk, depth)
	var readErr error
	go func() {
		defer close(out)
		readErr = readRange(ctx, f, size, pool, out)
	}()
	for c := range out {
		w.Write(c.buf[:c.n])
		pool <- c.buf
	}
	return readErr
}

func readRange(ctx context.Context, f *os.File, size int64, pool chan []byte, out chan<- chunk) error {
	for off := int64(0); off < size; {
		var buf []byte
		select {
		case buf = <-pool:
		case <-ctx.Done():
			return ctx.Err()
		}
		want := min(int64(len(buf)), size-off)
		// O_DIRECT needs whole blocks (4096 covers 4Kn disks): read rounded
		// up, keep what was asked. A short read at the device's end is fine.
		n, err := f.ReadAt(buf[:(want+4095)&^4095], off)
		if int64(n) < want {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("at offset %d: %w", off+int64(n), err)
		}
		out <- chunk{buf, int(want)}
		off += want
	}
	return nil
}

// alignedBuf returns a buffer whose start is 4096-aligned, as O_DIRECT needs.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & 4095)
	return b[skip : skip+n : skip+n]
}

// openDirect opens path for reading with O_DIRECT, or without it where the
// filesystem refuses (then direct is false).
func openDirect(path string) (f *os.File, direct bool, err error) {
	f, err = os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err == nil {
		return f, true, nil
	}
	f, err = os.Open(path)
	return f, false, err
}

// dropCache asks the kernel to forget cached pages of f so reads hit the disk.
func dropCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	_ = blkdev.FlushBuffers(f)
}

// DeviceSize is blkdev.Size, re-exported for callers that only flash.
func DeviceSize(f *os.File) (int64, error) { return blkdev.Size(f) }

// progress logs a line at every tenth of the total (or every 10 s when the
// total is unknown) with the amount done and the rate so far.
type progress struct {
	verb       string
	total, n   int64
	start      time.Time
	lastTenth  int64
	lastLogged time.Time
	log        Logf
}

func newProgress(verb string, total int64, log Logf) *progress {
	now := time.Now()
	return &progress{verb: verb, total: total, start: now, lastLogged: now, log: log}
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.log == nil {
		return len(b), nil
	}
	if p.total > 0 {
		if tenth := p.n * 10 / p.total; tenth > p.lastTenth && tenth < 10 {
			p.lastTenth = tenth
			p.log("%s %s of %s (%d%%), %s/s", p.verb, human(p.n), human(p.total), tenth*10, human(rate(p.n, time.Since(p.start))))
		}
	} else if time.Since(p.lastLogged) >= 10*time.Second {
		p.lastLogged = time.Now()
		p.log("%s %s, %s/s", p.verb, human(p.n), human(rate(p.n, time.Since(p.start))))
	}
	return len(b), nil
}

func (p *progress) done() {
	if p.log != nil {
		d := time.Since(p.start)
		p.log("%s %s in %s (%s/s)", p.verb, human(p.n), d.Round(time.Millisecond), human(rate(p.n, d)))
	}
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// human renders a byte count with a binary unit.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"KiB", "MiB", "GiB", "TiB"}[i])
}
