package upload

import (
	"context"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
)

// device is one sshtest user on its own server.
type device struct {
	srv   *sshtest.Server
	user  *sshtest.User
	login *sshtest.Login
}

func newDevice(t *testing.T, cfg sshtest.Config, ucfg sshtest.UserConfig) *device {
	t.Helper()
	srv := sshtest.New(t, cfg)
	l, err := srv.AddLogin(t.TempDir(), ucfg)
	if err != nil {
		t.Fatal(err)
	}
	return &device{srv: srv, user: l.User, login: l}
}

// dial logs in with the key under the strict policy, never touching the
// agent or ~/.ssh.
func (d *device) dial(t *testing.T) *remote.Client {
	t.Helper()
	o := remote.Options{Host: d.srv.Host, Port: d.srv.Port, User: d.user.Name, KeyFiles: []string{d.login.Key},
		KnownHosts: d.login.KnownHosts, HostKeyPolicy: remote.Strict, NoAgent: true, ConnectTimeout: 10 * time.Second,
		SSHConfig: "none"}
	c, err := remote.Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
