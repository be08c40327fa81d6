package flash_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/flash"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

type fixture struct {
	raw, gz, sha string
	size         int64
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	img, err := testimg.BalenaOS(filepath.Join(dir, "balena.img"))
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(dir, "balena.img.gz")
	sha, err := testimg.Gzip(img.Path, gz)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{raw: img.Path, gz: gz, sha: sha, size: img.Size}
}

// target returns a loop device (or, without root, a plain file) of size bytes
// filled with 0xA5, so unwritten and written regions differ.
func target(t *testing.T, size int64) (dev, backing string) {
	t.Helper()
	backing = filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(backing, bytes.Repeat([]byte{0xA5}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return backing, backing
	}
	dev, detach, err := testimg.Loop(backing, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detach() })
	return dev, backing
}

func TestImageFlashesAndVerifiesOnLoopDevice(t *testing.T) {
	fx := newFixture(t)
	dev, backing := target(t, fx.size+8*testimg.MiB)
	var log []string
	opts := flash.Options{BlockSize: 1 << 20, Size: fx.size, Log: func(f string, a ...any) { log = append(log, f) }}
	if n, err := flash.VerifyImage(context.Background(), fx.gz, fx.sha, opts); err != nil || n != fx.size {
		t.Fatalf("VerifyImage = %d, %v", n, err)
	}
	in, _ := os.Open(fx.gz)
	defer in.Close()
	res, err := flash.Image(context.Background(), dev, in, fx.sha, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != fx.size || res.SHA256 != fx.sha {
		t.Fatalf("result %+v, want size %d sha %s", res, fx.size, fx.sha)
	}
	got, _ := testimg.SHA256File(backing, fx.size)
	if got != fx.sha {
		t.Fatalf("backing file holds %s, want %s", got, fx.sha)
	}
	tail, _ := os.ReadFile(backing)
	if !bytes.Equal(tail[fx.size:], bytes.Repeat([]byte{0xA5}, 8*testimg.MiB)) {
		t.Fatal("bytes after the image were touched")
	}
	if !strings.Contains(strings.Join(log, "\n"), "/s") {
		t.Errorf("no rate in progress log: %q", log)
	}
}

func TestVerifyImageRejectsWrongContent(t *testing.T) {
	fx := newFixture(t)
	raw, _ := os.ReadFile(fx.raw)
	raw[20*testimg.MiB] ^= 1 // one bit in rootA
	bad := filepath.Join(t.TempDir(), "bad.img")
	os.WriteFile(bad, raw, 0o644)
	if _, err := testimg.Gzip(bad, bad+".gz"); err != nil {
		t.Fatal(err)
	}
	_, err := flash.VerifyImage(context.Background(), bad+".gz", fx.sha, flash.Options{})
	if !errors.Is(err, flash.ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
	// A truncated gzip stream is an error, not a shorter image.
	gz, _ := os.ReadFile(fx.gz)
	os.WriteFile(bad+".gz", gz[:len(gz)/2], 0o644)
	if _, err := flash.VerifyImage(context.Background(), bad+".gz", fx.sha, flash.Options{}); err == nil {
		t.Fatal("truncated gzip verified")
	}
}

func TestImageReportsWrongStreamHash(t *testing.T) {
	fx := newFixture(t)
	dev, _ := target(t, fx.size)
	in, _ := os.Open(fx.gz)
	defer in.Close()
	// A stream that differs from the expected hash must be reported even
	// though it was written.
	_, err := flash.Image(context.Background(), dev, in, strings.Repeat("0", 64), flash.Options{})
	if !errors.Is(err, flash.ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
}

func TestWriteRefusesSmallDevice(t *testing.T) {
	fx := newFixture(t)
	dev, backing := target(t, fx.size/2)
	testenv.Need(t, dev != backing, "a loop block device (root) for the size check")
	in, _ := os.Open(fx.gz)
	defer in.Close()
	_, err := flash.Write(context.Background(), dev, in, flash.Options{Size: fx.size})
	if !errors.Is(err, flash.ErrTooSmall) {
		t.Fatalf("err = %v, want ErrTooSmall", err)
	}
	raw, _ := os.ReadFile(backing)
	if !bytes.Equal(raw, bytes.Repeat([]byte{0xA5}, len(raw))) {
		t.Fatal("device written although too small")
	}
}

func TestWriteStopsOnCancel(t *testing.T) {
	fx := newFixture(t)
	dev, _ := target(t, fx.size)
	in, _ := os.Open(fx.gz)
	defer in.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := flash.Write(ctx, dev, in, flash.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// An image that ends inside a sector still reads back through O_DIRECT.
func TestImageWithOddSize(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 5*testimg.MiB+1000)
	for i := range raw {
		raw[i] = byte(i*7 + i>>12)
	}
	p := filepath.Join(dir, "odd.img")
	os.WriteFile(p, raw, 0o644)
	sha, err := testimg.Gzip(p, p+".gz")
	if err != nil {
		t.Fatal(err)
	}
	dev, backing := target(t, 8*testimg.MiB)
	in, _ := os.Open(p + ".gz")
	defer in.Close()
	res, err := flash.Image(context.Background(), dev, in, sha, flash.Options{BlockSize: 1 << 20})
	if err != nil || res.Size != int64(len(raw)) {
		t.Fatalf("Image = %+v, %v", res, err)
	}
	disk, _ := os.ReadFile(backing)
	if !bytes.Equal(disk[:len(raw)], raw) || disk[len(raw)] != 0xA5 {
		t.Fatal("device content wrong around the image end")
	}
}
