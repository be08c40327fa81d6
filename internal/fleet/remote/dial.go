package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/cpu"
)

// Client is a logged-in SSH connection to one device. Its methods may be
// called from several goroutines.
type Client struct {
	opts Options
	conn *ssh.Client
	auth string
	// jumps are the connections to the jump hosts, outermost first.
	jumps []*ssh.Client
	stop  chan struct{} // closed by Close; ends the keepalive loop
	lost  atomic.Bool   // set when keepalives went unanswered
	// hostKey is the device's host key, as accepted in the handshake.
	hostKey ssh.PublicKey

	mu      sync.Mutex
	closed  bool
	cleanup []func() error
}

// preferredCiphers puts the AEAD ciphers first: AES-GCM first when this
// machine has AES instructions (several times faster than chacha20 here,
// and devices' links are rarely faster than AES-GCM on their CPUs), else
// chacha20-poly1305, which is fast everywhere.
func preferredCiphers() []string {
	aead := []string{ssh.CipherAES128GCM, "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"}
	if !(cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ) && !(cpu.ARM64.HasAES && cpu.ARM64.HasPMULL) {
		aead = []string{"chacha20-poly1305@openssh.com", ssh.CipherAES128GCM, "aes256-gcm@openssh.com"}
	}
	return append(aead, "aes128-ctr", "aes192-ctr", "aes256-ctr")
}

// keepAlive sends OpenSSH keepalive requests every interval and closes the
// connection after three go unanswered, so a vanished device fails the
// operation in hand instead of hanging it.
func (c *Client) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				return // connection gone
			}
			missed = 0
		case <-time.After(interval):
			missed++
		case <-c.stop:
			return
		}
		if missed >= 3 {
			c.opts.Log.Warn().Str("host", c.opts.Host).Msg("ssh keepalive: no answer, closing connection")
			c.lost.Store(true)
			c.conn.Close()
			return
		}
	}
}

// lostErr turns the error of an operation the keepalive loop cut short into
// a timeout: the device stopped answering.
func (c *Client) lostErr(err error) error {
	if err != nil && c.lost.Load() && !hasClass(err) {
		return withClass(ErrTimeout, fmt.Errorf("device stopped answering keepalives: %w", err))
	}
	return err
}

// AuthMethod is the login method that worked: "publickey", "password" or
// "keyboard-interactive".
func (c *Client) AuthMethod() string { return c.auth }

// HostKey is the host key the device presented and the policy accepted.
func (c *Client) HostKey() ssh.PublicKey { return c.hostKey }

// User is the login user.
func (c *Client) User() string { return c.opts.User }

// Close ends the connection and everything opened on it.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.stop)
	err := c.conn.Close()
	for i := len(c.jumps) - 1; i >= 0; i-- {
		c.jumps[i].Close()
	}
	for _, f := range c.cleanup {
		f()
	}
	return err
}

// Classify gives err, from work done over this connection, its class the
// way the Client's own methods do: a timeout when ctx ended or the device
// stopped answering keepalives, a network class for a connection-level
// failure, else fallback (nil: err stays unclassified). An error that has a
// class keeps it.
func (c *Client) Classify(ctx context.Context, err, fallback error) error {
	return classify(ctx, c.lostErr(err), fallback)
}

// ErrNoSubsystem says the device refused a subsystem (no SFTP server).
var ErrNoSubsystem = errors.New("subsystem not offered")

// Subsystem opens a session running the named subsystem (e.g. "sftp") and
// returns its byte stream; closing it ends the session. An error wrapping
// ErrNoSubsystem means the device does not offer it.
func (c *Client) Subsystem(name string) (io.ReadWriteCloser, error) {
	sess, err := c.conn.NewSession()
	if err != nil {
		return nil, c.lostErr(classifyNet(fmt.Errorf("ssh session: %w", err), ErrTransfer))
	}
	w, err1 := sess.StdinPipe()
	r, err2 := sess.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		sess.Close()
		return nil, withClass(ErrTransfer, err)
	}
	if err := sess.RequestSubsystem(name); err != nil {
		sess.Close()
		return nil, withClass(ErrTransfer, fmt.Errorf("%s: %w (%w)", name, ErrNoSubsystem, err))
	}
	return &subsystem{Reader: r, WriteCloser: w, sess: sess}, nil
}

// subsystem is a subsystem session's stdout and stdin.
type subsystem struct {
	io.Reader
	io.WriteCloser
	sess *ssh.Session
}

func (s *subsystem) Close() error {
	s.WriteCloser.Close()
	return s.sess.Close()
}
