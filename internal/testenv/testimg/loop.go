package testimg

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Loop attaches path to a free loop device and returns it with a detach func.
// With partscan the kernel is asked to scan the partition table (losetup -P).
func Loop(path string, partscan bool) (dev string, detach func() error, err error) {
	args := []string{"--find", "--show"}
	if partscan {
		args = append(args, "--partscan")
	}
	out, err := exec.Command("losetup", append(args, path)...).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("losetup %s: %w: %s", path, err, out)
	}
	dev = strings.TrimSpace(string(out))
	return dev, func() error {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("losetup -d %s: %w: %s", dev, err, out)
		}
		return nil
	}, nil
}

// Gzip compresses the file src to dst and returns the SHA-256 of src.
func Gzip(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	defer out.Close()
	h := sha256.New()
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if _, err := io.Copy(io.MultiWriter(zw, h), in); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}

// Gunzip returns the uncompressed content of the gzip file at path.
func Gunzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// SHA256File returns the SHA-256 of the first n bytes of path (n < 0: all).
func SHA256File(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if n >= 0 {
		r = io.LimitReader(f, n)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
