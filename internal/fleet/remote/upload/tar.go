package upload

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
)

// tarSender streams whole files as one uncompressed tar archive into
// `tar xpf -` on the device, and appends the rest of a resumed file with
// `cat >>` in an exec of its own.
type tarSender struct {
	s   Session
	dir string

	pw     *io.PipeWriter // the archive, read by the device's tar
	tw     *tar.Writer
	cancel context.CancelFunc
	done   chan error // the device's tar's outcome
}

func (t *tarSender) start(ctx context.Context) error {
	ctx, t.cancel = context.WithCancel(ctx)
	pr, pw := io.Pipe()
	t.pw, t.tw, t.done = pw, tar.NewWriter(pw), make(chan error, 1)
	cmd := "cd " + remote.Quote(t.dir) + " && exec tar xpf -"
	go func() {
		_, err := t.s.Output(ctx, cmd, pr)
		// Unblocks a write still in progress when tar is gone.
		pr.CloseWithError(errors.Join(errors.New("tar on device ended"), err))
		t.done <- err
	}()
	return nil
}

func (t *tarSender) write(ctx context.Context, e Entry, offset int64, r io.Reader) error {
	if offset > 0 {
		return t.append(ctx, e, r)
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: e.Path + partSuffix, Size: e.Size,
		Mode: int64(e.Mode.Perm() | 0o200), ModTime: time.Now(), Format: tar.FormatPAX}
	if err := t.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar stream: %w", err)
	}
	if _, err := io.Copy(t.tw, r); err != nil {
		return fmt.Errorf("tar stream: %w", err)
	}
	return nil
}

// append completes a resumed file with cat >> in a separate exec.
func (t *tarSender) append(ctx context.Context, e Entry, r io.Reader) error {
	cmd := "cd " + remote.Quote(t.dir) + " && exec cat >> " + remote.Quote(e.Path+partSuffix)
	if _, err := t.s.Output(ctx, cmd, r); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return nil
}

// close ends the archive and waits for tar to unpack it; after a failure it
// kills tar instead.
func (t *tarSender) close(failed error) error {
	defer t.cancel()
	if failed != nil {
		t.cancel()
		t.pw.CloseWithError(failed)
		<-t.done
		return nil
	}
	err := errors.Join(t.tw.Close(), t.pw.Close())
	if werr := <-t.done; werr != nil {
		err = errors.Join(err, fmt.Errorf("tar on device: %w", werr))
	}
	return err
}
