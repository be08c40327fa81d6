package remote

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
)

// device is one sshtest user on a server, with a client key and a
// known_hosts file that knows the server.
type device struct {
	srv        *sshtest.Server
	user       *sshtest.User
	key        string // private key file authorised for user
	knownHosts string
}

func newDevice(t *testing.T, cfg sshtest.Config, ucfg sshtest.UserConfig) *device {
	t.Helper()
	srv := sshtest.New(t, cfg)
	return addDevice(t, srv, ucfg)
}

func addDevice(t *testing.T, srv *sshtest.Server, ucfg sshtest.UserConfig) *device {
	t.Helper()
	l, err := srv.AddLogin(t.TempDir(), ucfg)
	if err != nil {
		t.Fatal(err)
	}
	return &device{srv: srv, user: l.User, key: l.Key, knownHosts: l.KnownHosts}
}

// opts logs in with the key under the strict policy, never touching the
// agent or ~/.ssh.
func (d *device) opts() Options {
	return Options{Host: d.srv.Host, Port: d.srv.Port, User: d.user.Name, KeyFiles: []string{d.key},
		KnownHosts: d.knownHosts, HostKeyPolicy: Strict, NoAgent: true, ConnectTimeout: 10 * time.Second,
		SSHConfig: "none"}
}

// passwordOpts logs in with the password only: HOME points at an empty
// directory so no default key file is found.
func (d *device) passwordOpts(t *testing.T) Options {
	t.Setenv("HOME", t.TempDir())
	o := d.opts()
	o.KeyFiles = nil
	o.Password = d.user.Password
	return o
}

func dialT(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runOut(t *testing.T, c *Client, cmd string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	code, err := c.Run(context.Background(), cmd, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("%s: code %d err %v stderr %s", cmd, code, err, errOut.String())
	}
	return string(bytes.TrimSpace(out.Bytes()))
}

func runLocal(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(out))
}

var (
	syscallEHOSTUNREACH error = syscall.EHOSTUNREACH
	syscallENETUNREACH  error = syscall.ENETUNREACH
)

// classOf is the one class err wraps; nil for none.
func classOf(err error) error {
	for _, c := range classes() {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// dialConcurrently dials n times at once, with d (nil: each with a Dialer
// of its own, like separate processes), and fails t on any error.
func dialConcurrently(t *testing.T, d *Dialer, o Options, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			dial := Dial
			if d != nil {
				dial = d.Dial
			}
			c, err := dial(context.Background(), o)
			if err == nil {
				c.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
