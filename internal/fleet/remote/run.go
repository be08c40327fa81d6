package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/fleetmig/balena-migrate/internal/iox"
	"golang.org/x/crypto/ssh"
)

// Run runs cmd (a shell command line, run by the login shell in the login
// directory) and streams its output to stdout and stderr as it arrives (nil
// discards; both may be the same writer: writes are serialised). It
// returns the exit status; err is nil when the command ran to an exit, whatever its status. When ctx ends first the command is killed
// and err has class timeout; a lost connection is an error too.
func (c *Client) Run(ctx context.Context, cmd string, stdout, stderr io.Writer) (int, error) {
	return c.run(ctx, cmd, nil, stdout, stderr)
}

func (c *Client) run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	sess, err := c.conn.NewSession()
	if err != nil {
		return -1, c.lostErr(classifyNet(fmt.Errorf("ssh session: %w", err), nil))
	}
	defer sess.Close()
	sess.Stdin = stdin
	var stopOutput func()
	sess.Stdout, sess.Stderr, stopOutput = serialised(stdout, stderr)
	defer stopOutput()
	if err := sess.Start(cmd); err != nil {
		return -1, c.lostErr(classifyNet(fmt.Errorf("start remote command: %w", err), nil))
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return -1, withClass(ErrTimeout, fmt.Errorf("remote command: %w", ctx.Err()))
	}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit) && exit.Signal() == "":
		return exit.ExitStatus(), nil
	case errors.As(err, &exit):
		return -1, fmt.Errorf("remote command killed by signal %s", exit.Signal())
	}
	return -1, c.lostErr(classifyNet(fmt.Errorf("remote command: %w", err), nil))
}

// Output runs cmd with stdin (nil: none) and returns its standard output;
// a non-zero exit is an error quoting the start of the command's standard
// error.
func (c *Client) Output(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	out := &iox.Head{Max: MaxOutput + 1}
	errOut := &iox.Head{Max: 4096}
	code, err := c.run(ctx, cmd, stdin, out, errOut)
	if err != nil {
		return nil, err
	}
	if out.Buf.Len() > MaxOutput {
		// A device printing without end must not grow the worker.
		return nil, fmt.Errorf("remote %q printed more than %d MiB: refusing to read it", firstWord(cmd), MaxOutput>>20)
	}
	if code != 0 {
		return out.Buf.Bytes(), fmt.Errorf("remote %q exited %d: %s", firstWord(cmd), code, strings.TrimSpace(errOut.Buf.String()))
	}
	return out.Buf.Bytes(), nil
}

// MaxOutput bounds what Output reads from one command.
const MaxOutput = 16 << 20

// Arch is the device's `uname -m` (x86_64, armv7l, aarch64, ...).
func (c *Client) Arch(ctx context.Context) (string, error) {
	out, err := c.Output(ctx, "uname -m", nil)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// IsRoot reports whether the login user is root (commands need no sudo).
func (c *Client) IsRoot() bool { return c.opts.User == "root" }

// rootPrefix returns what makes a command run as root, and the stdin sudo
// needs: nothing for root; `sudo -n` when the login used a key (the sudoers
// rule must not ask for a password); `sudo -S -p ”` reading the password
// from stdin when the login used the password.
func (c *Client) rootPrefix() (string, string) {
	switch {
	case c.IsRoot():
		return "", ""
	case c.auth == AuthPublicKey || c.opts.Password == "":
		return "sudo -n ", ""
	}
	return "sudo -S -p '' ", c.opts.Password + "\n"
}

// RunAsRoot runs argv as root in dir (relative to the login directory; ""
// for the login directory itself), through sudo unless the login user is
// root, streaming output like Run. With sudo -S the password goes to sudo on
// stdin, never on a command line or in the output; if sudo does not ask for
// it the command finds it on its stdin, so commands run this way must not
// echo their input.
func (c *Client) RunAsRoot(ctx context.Context, dir string, argv []string, stdout, stderr io.Writer) (int, error) {
	prefix, stdin := c.rootPrefix()
	cmd := prefix + QuoteArgs(argv)
	if dir != "" {
		cmd = "cd " + Quote(dir) + " && " + cmd
	}
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	return c.run(ctx, cmd, in, stdout, stderr)
}

// StartDetachedAsRoot starts argv as root in a new session that survives
// this connection (setsid/nohup, output discarded) a second after it
// returns, e.g. reboot. It does not wait for argv. A connection that drops
// meanwhile counts as success: the command was sent.
func (c *Client) StartDetachedAsRoot(ctx context.Context, argv []string) error {
	prefix, stdin := c.rootPrefix()
	setsid := `s=; command -v setsid >/dev/null 2>&1 && s=setsid; `
	launch := `$s nohup sh -c 'sleep 1; exec "$@"' sh ` + prefix + QuoteArgs(argv) + ` >/dev/null 2>&1`
	cmd := setsid + launch + " </dev/null &"
	var in io.Reader
	if stdin != "" {
		// The shell reads the password before it backgrounds anything and
		// hands it to sudo through a pipe: never on a command line.
		cmd = setsid + `IFS= read -r p; printf '%s\n' "$p" | ` + launch + " &"
		in = strings.NewReader(stdin)
	}
	code, err := c.run(ctx, cmd, in, nil, nil)
	if err != nil {
		if dropped(err) {
			return nil
		}
		return err
	}
	if code != 0 {
		return fmt.Errorf("starting detached %q exited %d", firstWord(QuoteArgs(argv)), code)
	}
	return nil
}

// dropped reports a connection that went away under a command.
func dropped(err error) bool {
	var missing *ssh.ExitMissingError
	return errors.As(err, &missing) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET)
}

// WriteFile writes data to path (relative to the login directory) with
// mode, atomically: a temporary file renamed into place.
func (c *Client) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	cmd := fmt.Sprintf("umask 077 && cat > %[1]s && chmod %[2]o %[1]s && mv -f %[1]s %[3]s",
		Quote(path+".bm-tmp"), uint32(mode.Perm()), Quote(path))
	if _, err := c.Output(ctx, cmd, bytes.NewReader(data)); err != nil {
		return withClass(ErrTransfer, fmt.Errorf("write %s: %w", path, err))
	}
	return nil
}

// Quote quotes s for the device's POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteArgs quotes each word of argv and joins them with blanks.
func QuoteArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return s
}

// serialised wraps the two output writers so that x/crypto's two copying
// goroutines never write at the same time, and hides io.ReaderFrom, which a
// bytes.Buffer given as both would otherwise run twice at once and lose
// data. After stop, late output (of a command abandoned at a timeout) is
// dropped, so nothing writes to the caller's writers once Run returned.
func serialised(stdout, stderr io.Writer) (io.Writer, io.Writer, func()) {
	g := &writeGate{}
	wrap := func(w io.Writer) io.Writer {
		if w == nil {
			return nil
		}
		return &gatedWriter{g: g, w: w}
	}
	return wrap(stdout), wrap(stderr), g.stop
}

type writeGate struct {
	mu      sync.Mutex
	stopped bool
}

func (g *writeGate) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

type gatedWriter struct {
	g *writeGate
	w io.Writer
}

func (l *gatedWriter) Write(p []byte) (int, error) {
	l.g.mu.Lock()
	defer l.g.mu.Unlock()
	if l.g.stopped {
		return len(p), nil
	}
	return l.w.Write(p)
}
