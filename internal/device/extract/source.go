package extract

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// source is the raw flasher image, opened from a .img or out of a .zip.
type source struct {
	r       io.ReaderAt
	size    int64
	closers []func() error
}

func (s *source) Close() error {
	var first error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// openFlasher opens a raw flasher image, a gzip'd one (.img.gz), or the
// single .img inside a zip archive: read in place when raw or stored
// uncompressed, otherwise unpacked to a temporary file in tmpDir (removed on
// Close).
func openFlasher(path, tmpDir string, log Logf) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flasher image: %w", err)
	}
	s := &source{closers: []func() error{f.Close}}
	magic := make([]byte, 4)
	f.ReadAt(magic, 0)
	st, err := f.Stat()
	if err != nil {
		s.Close()
		return nil, err
	}
	if bytes.HasPrefix(magic, []byte{0x1f, 0x8b}) {
		if err := s.openGzip(f, path, tmpDir, log); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	if !bytes.Equal(magic, []byte("PK\x03\x04")) {
		s.r, s.size = f, st.Size()
		return s, nil
	}
	if err := s.openZip(f, st.Size(), path, tmpDir, log); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *source) openZip(f *os.File, size int64, path, tmpDir string, log Logf) error {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return fmt.Errorf("flasher zip %s: %w", path, err)
	}
	var imgs []*zip.File
	for _, zf := range zr.File {
		if strings.HasSuffix(strings.ToLower(zf.Name), ".img") {
			imgs = append(imgs, zf)
		}
	}
	if len(imgs) != 1 {
		return fmt.Errorf("flasher zip %s: expected exactly one .img inside, found %d", path, len(imgs))
	}
	zf := imgs[0]
	if zf.Method == zip.Store {
		off, err := zf.DataOffset()
		if err != nil {
			return fmt.Errorf("flasher zip %s: %w", path, err)
		}
		log("reading %s in place from %s (stored)", zf.Name, filepath.Base(path))
		s.r, s.size = io.NewSectionReader(f, off, int64(zf.UncompressedSize64)), int64(zf.UncompressedSize64)
		return nil
	}
	log("unpacking %s (%d MiB) from %s", zf.Name, zf.UncompressedSize64>>20, filepath.Base(path))
	tmp, err := os.CreateTemp(tmpDir, ".flasher-*.img")
	if err != nil {
		return fmt.Errorf("unpack flasher: %w", err)
	}
	s.closers = append(s.closers, func() error { tmp.Close(); return os.Remove(tmp.Name()) })
	rc, err := zf.Open()
	if err != nil {
		return fmt.Errorf("flasher zip %s: %w", path, err)
	}
	defer rc.Close()
	n, err := io.Copy(tmp, rc)
	if err != nil {
		return fmt.Errorf("unpack %s from %s: %w", zf.Name, path, err)
	}
	s.r, s.size = tmp, n
	return nil
}

// openGzip unpacks a gzip'd flasher image to a temporary file.
func (s *source) openGzip(f *os.File, path, tmpDir string, log Logf) error {
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("flasher gzip %s: %w", path, err)
	}
	log("unpacking %s", filepath.Base(path))
	tmp, err := os.CreateTemp(tmpDir, ".flasher-*.img")
	if err != nil {
		return fmt.Errorf("unpack flasher: %w", err)
	}
	s.closers = append(s.closers, func() error { tmp.Close(); return os.Remove(tmp.Name()) })
	n, err := io.Copy(tmp, zr)
	if err != nil {
		return fmt.Errorf("unpack %s: %w: download it again", path, err)
	}
	s.r, s.size = tmp, n
	return nil
}
