package sshtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func dial(t *testing.T, s *Server, user string, auth ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         10 * time.Second,
	})
}

func output(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	// Separate buffers: two goroutines copy stdout and stderr.
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errOut
	if err := sess.Run(cmd); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, errOut.String())
	}
	return strings.TrimSpace(out.String() + errOut.String())
}

func TestServerKeyLoginSudoAndCleanup(t *testing.T) {
	s := New(t, Config{})
	key, err := GenerateKey(filepath.Join(t.TempDir(), "id"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.AddUser(UserConfig{Keys: []ssh.PublicKey{key.PublicKey()}, Sudo: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(t, s, u.Name, ssh.PublicKeys(key))
	if err != nil {
		t.Fatalf("key login: %v\n%s", err, s.Log())
	}
	if got := output(t, c, "sudo -n id -u"); got != "0" {
		t.Errorf("sudo -n id -u = %q, want 0", got)
	}
	// The stand-in is what both PATH and sudo find; the real one is not allowed.
	output(t, c, "reboot now && sudo -n reboot")
	if n := u.RebootCalls(); n != 2 {
		t.Errorf("reboot stand-in calls = %d, want 2", n)
	}
	if got := output(t, c, "sudo -n /usr/sbin/reboot 2>&1 || echo refused"); !strings.HasSuffix(got, "refused") {
		t.Errorf("real reboot via sudo not refused: %q", got)
	}
	c.Close()

	other, _ := GenerateKey(filepath.Join(t.TempDir(), "other"))
	if _, err := dial(t, s, u.Name, ssh.PublicKeys(other)); err == nil {
		t.Error("login with a key not in authorized_keys succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(u.Home); !os.IsNotExist(err) {
		t.Errorf("home %s still there after Close: %v", u.Home, err)
	}
	if _, err := os.Stat("/etc/sudoers.d/sshtest-" + u.Name); !os.IsNotExist(err) {
		t.Errorf("sudoers drop-in still there after Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("sshd still listening after Close")
	}
}

func TestServerPasswordAndKeyboardInteractive(t *testing.T) {
	s := New(t, Config{Password: true, NoSFTP: true})
	u, err := s.AddUser(UserConfig{Password: "pw-Sshtest-1", Sudo: []string{"id"}, SudoPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	kbd := ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
		ans := make([]string, len(qs))
		for i := range ans {
			ans[i] = u.Password
		}
		return ans, nil
	})
	c, err := dial(t, s, u.Name, kbd)
	if err != nil {
		t.Fatalf("keyboard-interactive login: %v\n%s", err, s.Log())
	}
	if got := output(t, c, "echo "+u.Password+" | sudo -S -p '' id -u"); got != "0" {
		t.Errorf("sudo -S id -u = %q, want 0", got)
	}
	if got := output(t, c, "sudo -n id -u 2>&1; echo rc=$?"); !strings.HasSuffix(got, "rc=1") {
		t.Errorf("sudo -n without password = %q", got)
	}
	sftpSess, _ := c.NewSession()
	if err := sftpSess.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem offered although NoSFTP")
	}
	c.Close()
	c, err = dial(t, s, u.Name, ssh.Password(u.Password))
	if err != nil {
		t.Fatalf("password login: %v", err)
	}
	c.Close()
	if _, err := dial(t, s, u.Name, ssh.Password("wrong")); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestChangeHostKeyKeepsPort(t *testing.T) {
	s := New(t, Config{})
	old, port := s.HostKey(), s.Port
	if err := s.ChangeHostKey(); err != nil {
		t.Fatal(err)
	}
	if s.Port != port || bytes.Equal(old.Marshal(), s.HostKey().Marshal()) {
		t.Fatalf("port %d→%d, key changed: %v", port, s.Port, !bytes.Equal(old.Marshal(), s.HostKey().Marshal()))
	}
	var seen ssh.PublicKey
	ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{User: "x", HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
		seen = k
		return nil
	}, Timeout: 5 * time.Second})
	if seen == nil || !bytes.Equal(seen.Marshal(), s.HostKey().Marshal()) {
		t.Error("restarted sshd does not present the new host key")
	}
}

// OpenSSH's own client reaches the hidden device with the Bastion's files,
// and cannot reach it directly.
func TestBastionWithOpenSSH(t *testing.T) {
	b := NewBastion(t, t.TempDir(), "", UserConfig{})
	run := func(args ...string) (string, error) {
		base := []string{"-F", b.SSHConfig, "-o", "BatchMode=yes", "-o", "ConnectTimeout=3"}
		out, err := exec.Command("ssh", append(base, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := run("dev-1", "id -un"); err != nil || out != b.Login.User.Name {
		t.Fatalf("ssh dev-1 via the bastion: %v: %s", err, out)
	}
	if out, err := run("-o", "ProxyJump=none", "dev-1", "true"); err == nil {
		t.Fatalf("the device answered directly: %s", out)
	}
}

// A server standing in for balenaOS's host SSH lets root in with its keys
// only; other servers refuse root.
func TestServerRootKeys(t *testing.T) {
	key, err := GenerateKey(filepath.Join(t.TempDir(), "id"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(t, Config{RootKeys: []ssh.PublicKey{key.PublicKey()}})
	c, err := dial(t, s, "root", ssh.PublicKeys(key))
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	if got := output(t, c, "id -u"); got != "0" {
		t.Errorf("id -u = %q", got)
	}
	c.Close()
	other, _ := GenerateKey(filepath.Join(t.TempDir(), "other"))
	if _, err := dial(t, s, "root", ssh.PublicKeys(other)); err == nil {
		t.Error("root logged in with a key it was not given")
	}
	plain := New(t, Config{})
	if _, err := dial(t, plain, "root", ssh.PublicKeys(key)); err == nil {
		t.Error("root logged in where it has no keys")
	}
}
