package remote

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/ssh"
)

// tarSender streams whole files as one uncompressed tar archive into
// `tar xpf -` on the device, and appends the rest of a resumed file with
// `cat >>` in an exec of its own.
type tarSender struct {
	c   *Client
	dir string

	sess   *ssh.Session
	stdin  io.WriteCloser
	tw     *tar.Writer
	stderr bytes.Buffer
	stop   func() bool
}

func (s *tarSender) start(ctx context.Context) error {
	sess, err := s.c.conn.NewSession()
	if err != nil {
		return classifyNet(fmt.Errorf("ssh session: %w", err), nil)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return err
	}
	sess.Stderr = &limitedBuffer{b: &s.stderr, max: 4096}
	if err := sess.Start("cd " + shellQuote(s.dir) + " && exec tar xpf -"); err != nil {
		sess.Close()
		return classifyNet(fmt.Errorf("start tar on device: %w", err), nil)
	}
	s.sess, s.stdin, s.tw = sess, stdin, tar.NewWriter(stdin)
	s.stop = context.AfterFunc(ctx, func() { sess.Close() })
	return nil
}

func (s *tarSender) write(ctx context.Context, e Entry, offset int64, r io.Reader) error {
	if offset > 0 {
		return s.append(ctx, e, r)
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: e.Path + partSuffix, Size: e.Size,
		Mode: int64(e.Mode.Perm() | 0o200), ModTime: time.Now(), Format: tar.FormatPAX}
	if err := s.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar stream: %w", err)
	}
	if _, err := io.Copy(s.tw, r); err != nil {
		return fmt.Errorf("tar stream: %w", err)
	}
	return nil
}

// append completes a resumed file with cat >> in a separate exec.
func (s *tarSender) append(ctx context.Context, e Entry, r io.Reader) error {
	cmd := "cd " + shellQuote(s.dir) + " && exec cat >> " + shellQuote(e.Path+partSuffix)
	if _, err := s.c.output(ctx, cmd, r); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return nil
}

// close ends the archive and waits for tar to unpack it.
func (s *tarSender) close(failed error) error {
	defer s.sess.Close()
	defer s.stop()
	if failed != nil {
		return nil
	}
	err := errors.Join(s.tw.Close(), s.stdin.Close())
	if werr := s.sess.Wait(); werr != nil {
		err = errors.Join(err, fmt.Errorf("tar on device: %w: %s", werr, bytes.TrimSpace(s.stderr.Bytes())))
	}
	return err
}
