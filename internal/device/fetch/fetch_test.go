package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// flaky serves image with Range support; the first response is cut off
// after cut bytes, as a dropped link would.
func flaky(t *testing.T, image []byte, cut int) (*httptest.Server, *atomic.Int64) {
	var served atomic.Int64
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 && cut > 0 {
			w.Header().Set("Content-Length", "99999999")
			w.WriteHeader(http.StatusOK)
			w.Write(image[:cut])
			served.Add(int64(cut))
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
		cw := &countingWriter{ResponseWriter: w, n: &served}
		http.ServeContent(cw, r, "image.img.gz", time.Time{}, bytes.NewReader(image))
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestResumesAndVerifies(t *testing.T) {
	image := make([]byte, 3<<20)
	rand.Read(image)
	srv, served := flaky(t, image, 1<<20)
	out := filepath.Join(t.TempDir(), "image.img.gz")
	res, err := Run(context.Background(), Options{URL: srv.URL, SHA256: sum(image), Out: out, Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, image) {
		t.Fatal("the file differs from the image")
	}
	if res.Resumed != 1<<20 || served.Load() != int64(len(image)) {
		t.Errorf("resumed %d bytes, the server sent %d in all (want %d: nothing twice)", res.Resumed, served.Load(), len(image))
	}
	if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
		t.Error("the .part file is left")
	}
	// Already there: nothing is downloaded.
	before := served.Load()
	if res, err := Run(context.Background(), Options{URL: srv.URL, SHA256: sum(image), Out: out}); err != nil || !res.Already || served.Load() != before {
		t.Errorf("second run: %+v %v, served %d more", res, err, served.Load()-before)
	}
}

func TestWrongFileRefused(t *testing.T) {
	image := []byte("not the image the worker expects")
	srv, _ := flaky(t, image, 0)
	out := filepath.Join(t.TempDir(), "image.img.gz")
	_, err := Run(context.Background(), Options{URL: srv.URL, SHA256: sum([]byte("the right one")), Out: out})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	for _, p := range []string{out, out + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
}

func TestServerErrorEndsAfterTries(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	_, err := Run(context.Background(), Options{URL: srv.URL, SHA256: sum(nil), Out: filepath.Join(t.TempDir(), "x"), Tries: 2, Wait: time.Millisecond})
	if err == nil {
		t.Fatal("a 404 was accepted")
	}
}
