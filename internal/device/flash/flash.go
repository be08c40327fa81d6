// Package flash writes a gzip-compressed disk image to a block device and
// proves it arrived: the image streams through a three-stage pipeline
// (decompress → hash → write, each in its own goroutine, sharing a small pool
// of large buffers), the device is fsynced, and the written range is read back
// past the page cache and hashed again.
package flash

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultBlockSize is the size of each write and read-back request.
const DefaultBlockSize = 4 << 20

// ErrMismatch marks data whose SHA-256 is not the expected one.
var ErrMismatch = errors.New("SHA-256 mismatch")

// ErrTooSmall marks a device smaller than the image.
var ErrTooSmall = errors.New("device too small for the image")

// Logf receives progress lines.
type Logf func(format string, args ...any)

// Options tune a flash.
type Options struct {
	BlockSize int   // bytes per write; DefaultBlockSize when 0; a multiple of 4096
	Size      int64 // decompressed image size when known, for progress and the size check
	Log       Logf  // progress; nil discards
}

func (o Options) blockSize() int {
	if o.BlockSize <= 0 {
		return DefaultBlockSize
	}
	return (o.BlockSize + 4095) &^ 4095
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// Result describes the bytes that went to the device.
type Result struct {
	Size   int64
	SHA256 string
}

// VerifyImage decompresses the gzip file at path completely and checks that the
// SHA-256 of its content is wantSHA. It returns the decompressed size.
func VerifyImage(ctx context.Context, path, wantSHA string, opts Options) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("verify image: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("verify image %s: not a gzip file: %w", path, err)
	}
	h := sha256.New()
	p := newProgress("verified", opts.Size, opts.Log)
	n, err := copyCtx(ctx, io.MultiWriter(h, p), zr, opts.blockSize())
	if err != nil {
		return n, fmt.Errorf("verify image %s after %d bytes: %w", path, n, err)
	}
	p.done()
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
		return n, fmt.Errorf("verify image %s: %w: content has %s, expected %s", path, ErrMismatch, got, wantSHA)
	}
	return n, nil
}

// Image flashes the gzip stream gz to the device (or file) at dev, fsyncs it,
// reads the written range back and checks both hashes against wantSHA (empty:
// only the read-back is compared with the stream).
func Image(ctx context.Context, dev string, gz io.Reader, wantSHA string, opts Options) (Result, error) {
	res, err := Write(ctx, dev, gz, opts)
	if err != nil {
		return res, err
	}
	if wantSHA != "" && res.SHA256 != wantSHA {
		return res, fmt.Errorf("flash %s: %w: image stream has %s, expected %s", dev, ErrMismatch, res.SHA256, wantSHA)
	}
	opts.Size = res.Size
	got, err := ReadBack(ctx, dev, res.Size, opts)
	if err != nil {
		return res, err
	}
	if got != res.SHA256 {
		return res, fmt.Errorf("flash %s: read-back %w: device has %s, wrote %s", dev, ErrMismatch, got, res.SHA256)
	}
	opts.logf("read back %s from %s: SHA-256 %s matches", human(res.Size), dev, got)
	return res, nil
}

// Write decompresses gz onto dev with large writes and fsyncs it.
func Write(ctx context.Context, dev string, gz io.Reader, opts Options) (Result, error) {
	zr, err := gzip.NewReader(gz)
	if err != nil {
		return Result{}, fmt.Errorf("flash: image is not gzip: %w", err)
	}
	// O_EXCL: a block device that is mounted or held open exclusively
	// (any partition of it) is refused instead of written under a user.
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_EXCL, 0)
	if err != nil {
		return Result{}, fmt.Errorf("flash: %w", err)
	}
	defer f.Close()
	if opts.Size > 0 {
		if size, err := DeviceSize(f); err == nil && size > 0 && size < opts.Size {
			return Result{}, fmt.Errorf("flash %s: %w: %d bytes, image %d bytes", dev, ErrTooSmall, size, opts.Size)
		}
	}
	start := time.Now()
	res, err := pipeline(ctx, zr, f, opts)
	if err != nil {
		return res, fmt.Errorf("flash %s after %d bytes: %w", dev, res.Size, err)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("flash %s: fsync: %w", dev, err)
	}
	opts.logf("flashed %s to %s in %s (%s/s), synced", human(res.Size), dev,
		time.Since(start).Round(time.Millisecond), human(rate(res.Size, time.Since(start))))
	return res, nil
}

// ReadBack reads the first size bytes of dev, bypassing the page cache where
// the kernel allows it, and returns their SHA-256.
func ReadBack(ctx context.Context, dev string, size int64, opts Options) (string, error) {
	f, direct, err := openDirect(dev)
	if err != nil {
		return "", fmt.Errorf("read back %s: %w", dev, err)
	}
	defer f.Close()
	if !direct {
		dropCache(f)
	}
	h := sha256.New()
	p := newProgress("read back", size, opts.Log)
	if err := readPipeline(ctx, f, size, opts.blockSize(), io.MultiWriter(h, p)); err != nil {
		return "", fmt.Errorf("read back %s: %w", dev, err)
	}
	p.done()
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyCtx(ctx context.Context, dst io.Writer, src io.Reader, bs int) (int64, error) {
	buf := make([]byte, bs)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := io.ReadFull(src, buf)
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
