// Package fetch is `balena-migrate fetch` on the device: it downloads the
// balenaOS image itself, from balena or an operator's mirror, so the image
// bytes of a fleet do not all pass through the worker host's uplink. The
// download resumes where an earlier one stopped (HTTP Range) and the file
// takes its final name only once its SHA-256 is the one the worker gave.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fsutil"
	"github.com/fleetmig/balena-migrate/internal/iox"
)

// ErrChecksum marks a download whose content is not the expected one; the
// partial file is removed, so the next try starts afresh.
var ErrChecksum = errors.New("checksum mismatch")

// Options says what to fetch.
type Options struct {
	URL    string
	SHA256 string // hex, of the file as served
	Out    string // final path; Out+".part" while downloading
	Tries  int    // attempts, resuming each time (default 5)
	Client *http.Client
	Log    func(format string, a ...any)
	// Wait between tries (default 2 s, doubling).
	Wait time.Duration
}

// Result says what a fetch did.
type Result struct {
	Bytes   int64 // received in this call
	Resumed int64 // bytes kept from an earlier, cut-off download
	Already bool  // Out was already there with the right checksum
}

// Run downloads o.URL to o.Out.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Tries <= 0 {
		o.Tries = 5
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Wait <= 0 {
		o.Wait = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	want := strings.ToLower(strings.TrimSpace(o.SHA256))
	if len(want) != 64 {
		return Result{}, fmt.Errorf("--sha256 %q is not a SHA-256 (64 hex digits)", o.SHA256)
	}
	if sum, err := fileSum(ctx, o.Out); err == nil && sum == want {
		o.Log("%s is already here and its SHA-256 matches", o.Out)
		return Result{Already: true}, nil
	}
	var res Result
	wait := o.Wait
	for try := 1; ; try++ {
		err := once(ctx, o, &res)
		if err == nil {
			break
		}
		if errors.Is(err, ErrChecksum) || ctx.Err() != nil || try >= o.Tries {
			return res, err
		}
		o.Log("download of %s cut off (%v); resuming in %v (try %d of %d)", o.URL, err, wait, try+1, o.Tries)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
	part := o.Out + ".part"
	sum, err := fileSum(ctx, part)
	if err != nil {
		return res, err
	}
	if sum != want {
		os.Remove(part)
		return res, fmt.Errorf("%w: %s has SHA-256 %s, expected %s: the mirror serves another file", ErrChecksum, o.URL, sum, want)
	}
	if err := os.Rename(part, o.Out); err != nil {
		return res, err
	}
	return res, fsutil.SyncDir(filepath.Dir(o.Out))
}

// once downloads what is missing from the .part file.
func once(ctx context.Context, o Options, res *Result) error {
	part := o.Out + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		if res.Resumed == 0 {
			res.Resumed = have
		}
		o.Log("resuming %s at %d MiB", o.URL, have>>20)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		return nil // the .part is whole already; the checksum decides
	case resp.StatusCode == http.StatusOK:
		// The server ignores Range (or there was nothing yet): start over.
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	default:
		return fmt.Errorf("GET %s: %s", o.URL, resp.Status)
	}
	n, err := io.Copy(f, iox.ContextReader(ctx, resp.Body))
	res.Bytes += n
	if err != nil {
		return err
	}
	return f.Sync()
}

// fileSum is the hex SHA-256 of the file at path.
func fileSum(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, iox.ContextReader(ctx, f)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
