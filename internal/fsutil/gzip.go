package fsutil

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/iox"
)

// WriteGzip compresses r into path at the given gzip level, crash safe:
// a temporary file beside it, fsynced, renamed into place, the directory
// fsynced. With sum it also returns the SHA-256 of what it read (hex);
// hashing costs a slow board seconds per image, so it is asked for.
func WriteGzip(ctx context.Context, path string, r io.Reader, level int, sum bool) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, level)
	if err != nil {
		return "", err
	}
	var h hash.Hash
	in := iox.ContextReader(ctx, r)
	if sum {
		h = sha256.New()
		in = io.TeeReader(in, h)
	}
	if _, err := io.Copy(zw, in); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	for _, step := range []func() error{zw.Close, bw.Flush, tmp.Sync, tmp.Close} {
		if err := step(); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	if h == nil {
		return "", nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
