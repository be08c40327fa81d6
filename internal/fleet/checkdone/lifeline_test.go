package checkdone

import (
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
)

// TestLifeline: two migrated devices stay offline past MIG_MAX_STATUS_AGE
// and their old systems are gone. One runs "balenaOS": an sshd on a second
// port that lets root in with the operator's key, as balenaOS's host SSH
// lets in config.json's os.sshKeys; it fails as flashed_offline with the
// diagnostics in its log and its new host key recorded. The other answers
// nowhere and is lost, saying that balenaOS's SSH did not answer either.
func TestLifeline(t *testing.T) {
	key := filepath.Join(t.TempDir(), "id")
	signer, err := sshtest.GenerateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	balenaOS := sshtest.New(t, sshtest.Config{RootKeys: []ssh.PublicKey{signer.PublicKey()}})
	known := filepath.Join(t.TempDir(), "known_hosts")
	e := newEnv(t, map[string]string{config.MaxStatusAge: "900", config.CheckInterval: "60", config.Stage2Look: "0",
		config.SSHKey: key, config.KnownHosts: known, config.ConnTimeout: "5"})
	closedPort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	oldSystem := closedPort() // the old system's sshd is gone with it
	for id, osPort := range map[string]int{"flashed": balenaOS.Port, "gone": closedPort()} {
		e.migrated(t, id, 16*time.Minute, "")
		e.edit(t, id, func(u *unit.Unit) {
			u.Set(config.SSHHost, balenaOS.Host)
			u.Set(config.SSHPort, strconv.Itoa(oldSystem))
			u.Set(config.SSHUser, "pi")
			u.Set(config.SSHPasswd, "old-system-password")
			u.Set(config.OSSSHPort, strconv.Itoa(osPort))
		})
	}
	e.runOnce(t)

	d, u := e.find(t, "flashed")
	if d != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassFlashedOffline) {
		t.Fatalf("flashed: in %s class %q: %s\n%s", d, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg), readLog(t, u))
	}
	wantKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(balenaOS.HostKey())))
	if u.Get(unit.FieldOSHostKey) != wantKey || !strings.Contains(u.Get(unit.FieldFailMsg), ssh.FingerprintSHA256(balenaOS.HostKey())) {
		t.Errorf("host key: OS_HOST_KEY %q, message %s", u.Get(unit.FieldOSHostKey), u.Get(unit.FieldFailMsg))
	}
	log := readLog(t, u)
	for _, want := range []string{"--- balenaOS on device", "seen over its host SSH (port " + strconv.Itoa(balenaOS.Port) + ")",
		"@@ nmcli -f NAME,UUID,TYPE,DEVICE,STATE connection show", "@@ journalctl -u NetworkManager", "@@ journalctl -u balena-supervisor",
		"@@ cat /etc/resolv.conf", "@@ chronyc tracking", "@@ date -u", "--- end of balenaOS diagnostics ---"} {
		if !strings.Contains(log, want) {
			t.Errorf("the unit log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "old-system-password") {
		t.Error("the password reached the unit log")
	}
	// The new host key is in known_hosts (accept-new), under its port.
	if kh := readFile(t, known); !strings.Contains(kh, "[127.0.0.1]:"+strconv.Itoa(balenaOS.Port)) {
		t.Errorf("known_hosts:\n%s", kh)
	}
	// The stand-in saw root log in with the key, never a password.
	if sl := balenaOS.Log(); !strings.Contains(sl, "Accepted publickey for root") || strings.Contains(sl, "password for root") {
		t.Errorf("balenaOS stand-in's log:\n%s", sl)
	}

	d, u = e.find(t, "gone")
	if d != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassLost) || !strings.Contains(u.Get(unit.FieldFailMsg), "balenaOS's host SSH (port") {
		t.Fatalf("gone: in %s class %q: %s", d, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
