package migrate

import (
	"context"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
)

// BenchmarkProbe is what the probe adds to a unit, on an open connection
// to a real sshd: the probe command against the cheapest command there is
// (`true`), run side by side. go test -run x -bench Probe ./internal/migrate
func BenchmarkProbe(b *testing.B) {
	srv := sshtest.New(b, sshtest.Config{})
	key := b.TempDir() + "/id"
	signer, err := sshtest.GenerateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	u, err := srv.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, err := remote.Dial(ctx, remote.Options{Host: srv.Host, Port: srv.Port, User: u.Name, KeyFiles: []string{key},
		KnownHosts: b.TempDir() + "/known_hosts", HostKeyPolicy: remote.AcceptNew})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, bc := range []struct{ name, cmd string }{{"true", "true"}, {"probe", probeScript}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				out, err := c.Output(ctx, bc.cmd, nil)
				if err != nil {
					b.Fatal(err)
				}
				if bc.name == "probe" {
					if _, err := parseProbe(string(out)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
