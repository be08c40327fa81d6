package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestMatchHost(t *testing.T) {
	hashed := knownhosts.HashHostname("[10.0.0.7]:2222")
	for _, tc := range []struct {
		patterns []string
		host     string
		want     bool
	}{
		{[]string{"dev1"}, "dev1", true},
		{[]string{"dev1"}, "dev10", false},
		{[]string{"other", "[10.0.0.7]:2222"}, "[10.0.0.7]:2222", true},
		{[]string{"10.0.0.7"}, "[10.0.0.7]:2222", false},
		{[]string{"[10.0.0.*]:2222"}, "[10.0.0.7]:2222", true},
		{[]string{"[10.0.0.*]:2222"}, "[10.0.0.7]:22", false},
		{[]string{"dev?"}, "dev7", true},
		{[]string{"dev?"}, "dev77", false},
		{[]string{"*.fleet", "!gw.fleet"}, "a.fleet", true},
		{[]string{"*.fleet", "!gw.fleet"}, "gw.fleet", false},
		{[]string{"!gw.fleet", "*.fleet"}, "gw.fleet", false},
		{[]string{hashed}, "[10.0.0.7]:2222", true},
		{[]string{hashed}, "[10.0.0.8]:2222", false},
		{[]string{"|1|bad"}, "x", false},
	} {
		if got := matchHost(tc.patterns, tc.host); got != tc.want {
			t.Errorf("matchHost(%q, %q) = %v, want %v", tc.patterns, tc.host, got, tc.want)
		}
	}
}

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

// Lines appended after the first parse are read on their own: the file is
// not parsed again, and what they say counts like the rest of the file.
func TestKnownHostsReadsOnlyTheTail(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	a, b, c, revoked := newKey(t), newKey(t), newKey(t), newKey(t)
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 22}
	writeFile(t, file, knownhosts.Line([]string{"a.fleet"}, a)+"\n")
	f := &knownHostsFile{path: file}
	is := func(host string, key ssh.PublicKey, want string) {
		t.Helper()
		res, err := f.check(host, addr, key)
		if err != nil {
			t.Fatal(err)
		}
		got := "unknown"
		switch {
		case res.revoked:
			got = "revoked"
		case res.ok:
			got = "ok"
		case len(res.want) > 0:
			got = fmt.Sprintf("changed:%d", res.want[0].Line)
		}
		if got != want {
			t.Errorf("%s: %s, want %s", host, got, want)
		}
	}
	is("a.fleet:22", a, "ok")
	is("b.fleet:2222", b, "unknown")

	appendFile(t, file, "# recorded by another worker\n"+knownhosts.Line([]string{knownhosts.HashHostname("[b.fleet]:2222")}, b)+"\n")
	is("b.fleet:2222", b, "ok")
	is("b.fleet:2222", c, "changed:3")
	// A line still being written is not read until it is complete.
	line := knownhosts.Line([]string{"c.fleet"}, c)
	appendFile(t, file, line[:20])
	is("c.fleet:22", c, "unknown")
	appendFile(t, file, line[20:]+"\n")
	is("c.fleet:22", c, "ok")
	appendFile(t, file, "@revoked * "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(revoked)))+"\n")
	is("d.fleet:22", revoked, "revoked")
	if f.loads != 1 {
		t.Errorf("file parsed %d times while it only grew, want 1", f.loads)
	}

	// A file replaced (the operator removed a line) is parsed afresh.
	writeFile(t, file+".new", knownhosts.Line([]string{"a.fleet"}, a)+"\n")
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	is("c.fleet:22", c, "unknown")
	if f.loads != 2 {
		t.Errorf("replaced file: %d parses, want 2", f.loads)
	}
}

// The dials of one Dialer (one worker process) share one parse of
// known_hosts, also when another process records a new host meanwhile; two
// processes accepting the same new host concurrently record it once.
func TestDialerParsesKnownHostsOnce(t *testing.T) {
	d1 := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	d2 := addDevice(t, sshtest.New(t, sshtest.Config{}), sshtest.UserConfig{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var big strings.Builder
	for i := range 3000 {
		big.WriteString(knownhosts.Line([]string{fmt.Sprintf("[10.9.%d.%d]:22", i/250, i%250)}, newKey(t)) + "\n")
	}
	writeFile(t, kh, big.String()+d1.srv.KnownHostsLine()+"\n")

	var worker, other Dialer
	o1 := d1.opts()
	o1.KnownHosts = kh
	dialConcurrently(t, &worker, o1, 8)

	// Two "processes" meet a new device at once under accept-new.
	o2 := d2.opts()
	o2.KnownHosts, o2.HostKeyPolicy = kh, AcceptNew
	var wg sync.WaitGroup
	wg.Go(func() { dialConcurrently(t, &worker, o2, 4) })
	wg.Go(func() { dialConcurrently(t, &other, o2, 4) })
	wg.Wait()
	data, _ := os.ReadFile(kh)
	if n := strings.Count(string(data), d2.srv.KnownHostsLine()); n != 1 {
		t.Errorf("new host recorded %d times, want once", n)
	}
	// What the other process recorded is trusted under strict, still
	// without parsing the file again.
	o2.HostKeyPolicy = Strict
	dialConcurrently(t, &worker, o2, 2)
	if n := worker.known.file(kh).loads; n != 1 {
		t.Errorf("known_hosts parsed %d times by one Dialer, want 1", n)
	}
}
