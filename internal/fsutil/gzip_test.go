package fsutil

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteGzip(t *testing.T) {
	data := bytes.Repeat([]byte("balena "), 100000)
	path := filepath.Join(t.TempDir(), "image.img.gz")
	sum, err := WriteGzip(context.Background(), path, bytes.NewReader(data), gzip.BestSpeed, true)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if sum != hex.EncodeToString(want[:]) {
		t.Errorf("sum %s", sum)
	}
	f, _ := os.Open(path)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// A cancelled write leaves nothing at path.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	other := filepath.Join(t.TempDir(), "x.gz")
	if _, err := WriteGzip(ctx, other, bytes.NewReader(data), gzip.BestSpeed, false); err == nil {
		t.Fatal("a cancelled write succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(other)); len(entries) != 0 {
		t.Errorf("a cancelled write left %v", entries)
	}
}
