package remote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newBastionSetup(t *testing.T) *sshtest.Bastion {
	t.Helper()
	// Few unauthenticated connections: the jump host's login cap must keep
	// a burst of dials within it.
	return sshtest.NewBastion(t, t.TempDir(), "4", sshtest.UserConfig{Sudo: []string{"id"}})
}

// bastionOpts names the device by its ssh_config alias only.
func bastionOpts(b *sshtest.Bastion) Options {
	return Options{Host: "dev-1", SSHConfig: b.SSHConfig, KnownHosts: b.KnownHosts, HostKeyPolicy: Strict,
		NoAgent: true, ConnectTimeout: 10 * time.Second}
}

func TestDialThroughBastion(t *testing.T) {
	b := newBastionSetup(t)
	ctx := context.Background()

	// The device cannot be reached from here directly.
	direct := bastionOpts(b)
	direct.ProxyJump, direct.ConnectTimeout = "none", 2*time.Second
	if c, err := Dial(ctx, direct); err == nil {
		c.Close()
		t.Fatal("the device answered directly: the test network does not hide it")
	}

	// Everything from ~/.ssh/config: alias, HostName, Port, User, keys, jump.
	var d Dialer
	c, err := d.Dial(ctx, bastionOpts(b))
	if err != nil {
		t.Fatalf("through the bastion: %v", err)
	}
	defer c.Close()
	if got := runOut(t, c, "id -un; echo $SSH_CONNECTION"); !strings.HasPrefix(got, b.Login.User.Name+"\n") ||
		strings.Contains(got, "127.0.0.1") {
		t.Errorf("on the device: %q", got)
	}
	var out strings.Builder
	if code, err := c.RunAsRoot(ctx, "", []string{"id", "-u"}, &out, nil); err != nil || code != 0 || out.String() != "0\n" {
		t.Errorf("sudo through the bastion: code %d err %v out %q", code, err, out.String())
	}

	// The same from MIG_SSH_OPTS alone, without any ssh_config.
	o, _, err := Options{Host: b.Net.DeviceAddr, Port: b.Device.Port, User: b.Login.User.Name,
		KeyFiles: []string{b.Login.Key, b.BastionLogin.Key}, KnownHosts: b.KnownHosts, HostKeyPolicy: Strict,
		NoAgent: true, SSHConfig: "none"}.WithSSHOpts(fmt.Sprintf("-J %s@%s:%d", b.BastionLogin.User.Name, b.Net.BastionAddr, b.Bastion.Port))
	if err != nil {
		t.Fatal(err)
	}
	c2 := dialT(t, o)
	if got := runOut(t, c2, "id -un"); got != b.Login.User.Name {
		t.Errorf("-J: id -un = %q", got)
	}

	// A port closed behind the bastion is refused, and says so.
	closed := bastionOpts(b)
	closed.Port = b.Device.Port + 1
	if _, err := d.Dial(ctx, closed); !errors.Is(err, ErrRefused) {
		t.Errorf("closed port behind the bastion: %v", err)
	}
}

// A burst of dials through one bastion stays within its MaxStartups: the
// Dialer lets only JumpLogins logins to it run at once.
func TestJumpLoginsCapped(t *testing.T) {
	b := newBastionSetup(t)
	d := &Dialer{JumpLogins: 2}
	dialConcurrently(t, d, bastionOpts(b), 12)
}

func TestWrongBastionHostKeyRefused(t *testing.T) {
	b := newBastionSetup(t)
	writeFile(t, b.KnownHosts, knownhosts.Line([]string{knownhosts.Normalize(b.Bastion.Addr())}, newKey(t))+"\n"+
		b.Device.KnownHostsLine()+"\n")
	before, _ := os.ReadFile(b.KnownHosts)
	for _, p := range []HostKeyPolicy{Strict, AcceptNew} {
		o := bastionOpts(b)
		o.HostKeyPolicy = p
		_, err := Dial(context.Background(), o)
		var hk *HostKeyError
		if !errors.As(err, &hk) || !hk.Changed || !strings.Contains(err.Error(), "jump host bastion") {
			t.Errorf("%s: want the bastion's changed key refused, got %v", p, err)
		}
	}
	if after, _ := os.ReadFile(b.KnownHosts); string(after) != string(before) {
		t.Errorf("known_hosts changed:\n%s", after)
	}
}
