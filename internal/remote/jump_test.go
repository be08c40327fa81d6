package remote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh/knownhosts"
)

// bastionSetup is a device sshd that only a bastion sshd can reach, with a
// user on each, a known_hosts file that knows both and an ssh_config that
// names them.
type bastionSetup struct {
	hidden           *sshtest.Hidden
	bastion, device  *sshtest.Server
	bastLog, devLog  *sshtest.Login
	knownHosts, conf string
}

func newBastionSetup(t *testing.T) *bastionSetup {
	t.Helper()
	h := sshtest.NewHidden(t)
	b := &bastionSetup{hidden: h,
		// Few unauthenticated connections: the jump host's login cap must
		// keep a burst of dials within it.
		bastion: sshtest.New(t, sshtest.Config{NetNS: h.BastionNS, ListenAddress: h.BastionAddr, MaxStartups: "4"}),
		device:  sshtest.New(t, sshtest.Config{NetNS: h.DeviceNS, ListenAddress: h.DeviceAddr}),
	}
	dir := t.TempDir()
	var err error
	if b.bastLog, err = b.bastion.AddLogin(mkdir(t, dir, "bastion"), sshtest.UserConfig{}); err != nil {
		t.Fatal(err)
	}
	if b.devLog, err = b.device.AddLogin(mkdir(t, dir, "device"), sshtest.UserConfig{Sudo: []string{"id"}}); err != nil {
		t.Fatal(err)
	}
	b.knownHosts = filepath.Join(dir, "known_hosts")
	writeFile(t, b.knownHosts, b.bastion.KnownHostsLine()+"\n"+b.device.KnownHostsLine()+"\n")
	b.conf = filepath.Join(dir, "ssh_config")
	writeFile(t, b.conf, fmt.Sprintf(`# the operator's client config
Host bastion
  HostName %s
  Port %d
  User %s
  IdentityFile %s

Host dev-*
  ProxyJump bastion
  User %s
  IdentityFile %s

Host dev-1
  HostName %s
  Port %d
`, h.BastionAddr, b.bastion.Port, b.bastLog.User.Name, b.bastLog.Key,
		b.devLog.User.Name, b.devLog.Key, h.DeviceAddr, b.device.Port))
	return b
}

func mkdir(t *testing.T, parts ...string) string {
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// opts names the device by its ssh_config alias only.
func (b *bastionSetup) opts() Options {
	return Options{Host: "dev-1", SSHConfig: b.conf, KnownHosts: b.knownHosts, HostKeyPolicy: Strict,
		NoAgent: true, ConnectTimeout: 10 * time.Second}
}

func TestDialThroughBastion(t *testing.T) {
	b := newBastionSetup(t)
	ctx := context.Background()

	// The device cannot be reached from here directly.
	direct := b.opts()
	direct.ProxyJump, direct.ConnectTimeout = "none", 2*time.Second
	if c, err := Dial(ctx, direct); err == nil {
		c.Close()
		t.Fatal("the device answered directly: the test network does not hide it")
	}

	// Everything from ~/.ssh/config: alias, HostName, Port, User, keys, jump.
	var d Dialer
	c, err := d.Dial(ctx, b.opts())
	if err != nil {
		t.Fatalf("through the bastion: %v", err)
	}
	defer c.Close()
	if got := runOut(t, c, "id -un; echo $SSH_CONNECTION"); !strings.HasPrefix(got, b.devLog.User.Name+"\n") ||
		strings.Contains(got, "127.0.0.1") {
		t.Errorf("on the device: %q", got)
	}
	var out strings.Builder
	if code, err := c.RunAsRoot(ctx, "", []string{"id", "-u"}, &out, nil); err != nil || code != 0 || out.String() != "0\n" {
		t.Errorf("sudo through the bastion: code %d err %v out %q", code, err, out.String())
	}

	// The same from MIG_SSH_OPTS alone, without any ssh_config.
	o, _, err := Options{Host: b.hidden.DeviceAddr, Port: b.device.Port, User: b.devLog.User.Name,
		KeyFiles: []string{b.devLog.Key, b.bastLog.Key}, KnownHosts: b.knownHosts, HostKeyPolicy: Strict,
		NoAgent: true, SSHConfig: "none"}.WithSSHOpts(fmt.Sprintf("-J %s@%s:%d", b.bastLog.User.Name, b.hidden.BastionAddr, b.bastion.Port))
	if err != nil {
		t.Fatal(err)
	}
	c2 := dialT(t, o)
	if got := runOut(t, c2, "id -un"); got != b.devLog.User.Name {
		t.Errorf("-J: id -un = %q", got)
	}

	// A port closed behind the bastion is refused, and says so.
	closed := b.opts()
	closed.Port = b.device.Port + 1
	if _, err := d.Dial(ctx, closed); !errors.Is(err, ErrRefused) {
		t.Errorf("closed port behind the bastion: %v", err)
	}
}

// A burst of dials through one bastion stays within its MaxStartups: the
// Dialer lets only JumpLogins logins to it run at once.
func TestJumpLoginsCapped(t *testing.T) {
	b := newBastionSetup(t)
	d := &Dialer{JumpLogins: 2}
	dialConcurrently(t, d, b.opts(), 12)
}

func TestWrongBastionHostKeyRefused(t *testing.T) {
	b := newBastionSetup(t)
	writeFile(t, b.knownHosts, knownhosts.Line([]string{knownhosts.Normalize(b.bastion.Addr())}, newKey(t))+"\n"+
		b.device.KnownHostsLine()+"\n")
	before, _ := os.ReadFile(b.knownHosts)
	for _, p := range []HostKeyPolicy{Strict, AcceptNew} {
		o := b.opts()
		o.HostKeyPolicy = p
		_, err := Dial(context.Background(), o)
		var hk *HostKeyError
		if !errors.As(err, &hk) || !hk.Changed || !strings.Contains(err.Error(), "jump host bastion") {
			t.Errorf("%s: want the bastion's changed key refused, got %v", p, err)
		}
	}
	if after, _ := os.ReadFile(b.knownHosts); string(after) != string(before) {
		t.Errorf("known_hosts changed:\n%s", after)
	}
}
