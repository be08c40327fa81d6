package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
)

func TestRunAsRootWithKeyUsesSudoN(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{Sudo: []string{"id", "pwd"}})
	c := dialT(t, d.opts())
	runOut(t, c, "mkdir -p 'migrate dir'")
	var out, errOut bytes.Buffer
	code, err := c.RunAsRoot(context.Background(), "migrate dir", []string{"pwd"}, &out, &errOut)
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != d.user.Path("migrate dir") {
		t.Fatalf("sudo pwd in dir: code %d err %v out %q stderr %q", code, err, out.String(), errOut.String())
	}
	out.Reset()
	if code, err := c.RunAsRoot(context.Background(), "", []string{"id", "-u"}, &out, nil); err != nil || code != 0 || out.String() != "0\n" {
		t.Errorf("sudo id -u: code %d err %v out %q", code, err, out.String())
	}
	// A command the sudoers rule does not allow fails; sudo -n never prompts.
	code, err = c.RunAsRoot(context.Background(), "", []string{"cat", "/etc/shadow"}, nil, nil)
	if err != nil || code == 0 {
		t.Errorf("disallowed command: code %d err %v", code, err)
	}
}

func TestRunAsRootWithPasswordFeedsSudo(t *testing.T) {
	const pw = "Pw-sudo-S-77"
	d := newDevice(t, sshtest.Config{Password: true}, sshtest.UserConfig{Password: pw, Sudo: []string{"id"}, SudoPassword: true})
	c := dialT(t, d.passwordOpts(t))
	var out, errOut bytes.Buffer
	code, err := c.RunAsRoot(context.Background(), "", []string{"id", "-u"}, &out, &errOut)
	if err != nil || code != 0 || out.String() != "0\n" {
		t.Fatalf("sudo -S id -u: code %d err %v out %q stderr %q", code, err, out.String(), errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), pw) {
		t.Error("the password shows in the output")
	}
	// The same user logged in with a key gets sudo -n, which this rule refuses.
	ck := dialT(t, d.opts())
	if code, err := ck.RunAsRoot(context.Background(), "", []string{"id", "-u"}, nil, nil); err != nil || code == 0 {
		t.Errorf("sudo -n with a password rule: code %d err %v", code, err)
	}
}

func TestStartDetachedReboot(t *testing.T) {
	const pw = "Pw-reboot-5"
	d := newDevice(t, sshtest.Config{Password: true}, sshtest.UserConfig{Password: pw, Sudo: []string{"id"}, SudoPassword: true})
	keyUser := addDevice(t, d.srv, sshtest.UserConfig{Sudo: []string{"id"}})
	for _, tc := range []struct {
		name string
		dev  *device
		opts Options
	}{{"password", d, d.passwordOpts(t)}, {"key", keyUser, keyUser.opts()}} {
		c := dialT(t, tc.opts)
		start := time.Now()
		if err := c.StartDetachedAsRoot(context.Background(), []string{"reboot"}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if time.Since(start) > 900*time.Millisecond {
			t.Errorf("%s: did not return at once (%v)", tc.name, time.Since(start))
		}
		c.Close() // the command must survive the connection
		for deadline := time.Now().Add(10 * time.Second); tc.dev.user.RebootCalls() == 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		if n := tc.dev.user.RebootCalls(); n != 1 {
			t.Errorf("%s: reboot stand-in ran %d times, want 1", tc.name, n)
		}
	}
}

// TestDetachedDroppedConnectionIsSuccess uses an in-process server that
// drops the connection as soon as the command arrives, without an exit
// status, as a device that reboots at once may do.
func TestDetachedDroppedConnectionIsSuccess(t *testing.T) {
	addr := droppingServer(t)
	host, port, _ := net.SplitHostPort(addr)
	o := Options{Host: host, Port: atoiT(t, port), User: "root", Password: "x", NoAgent: true, HostKeyPolicy: Off}
	c := dialT(t, o)
	if err := c.StartDetachedAsRoot(context.Background(), []string{"reboot"}); err != nil {
		t.Fatalf("dropped connection not taken as success: %v", err)
	}
	c = dialT(t, o)
	if _, err := c.Run(context.Background(), "true", nil, nil); err == nil {
		t.Error("Run over a dropped connection reported success")
	}
}

// droppingServer accepts any password and closes the connection when an
// exec request arrives.
func droppingServer(t *testing.T) string {
	t.Helper()
	signer, err := sshtest.GenerateKey(t.TempDir() + "/host")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go serveAndDrop(nc, cfg)
		}
	}()
	return l.Addr().String()
}

func serveAndDrop(nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		ch, creqs, err := nch.Accept()
		if err != nil {
			return
		}
		go func() {
			for r := range creqs {
				if r.Type == "exec" {
					r.Reply(true, nil)
					ch.Write([]byte("going down\n"))
					nc.Close()
					return
				}
				r.Reply(false, nil)
			}
		}()
	}
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	n, err := port(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriteFile(t *testing.T) {
	d := newDevice(t, sshtest.Config{NoSFTP: true}, sshtest.UserConfig{})
	c := dialT(t, d.opts())
	runOut(t, c, "mkdir migrate")
	data := `{"uuid":"0123456789abcdef0123456789abcdef"}`
	for range 2 {
		if err := c.WriteFile(context.Background(), "migrate/balena-migrate-config.json", []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := d.user.Path("migrate/balena-migrate-config.json")
	got, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(got) != data || st.Mode().Perm() != 0o600 {
		t.Errorf("config.json %q mode %v", got, st.Mode().Perm())
	}
	if err := c.WriteFile(context.Background(), "no-such-dir/x", nil, 0o644); !errors.Is(err, ErrTransfer) {
		t.Errorf("write into a missing directory: %v", err)
	}
}

// TestOutputIsBounded: a device that prints without end cannot grow the
// worker past MaxOutput; the command fails instead of being read whole.
func TestOutputIsBounded(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	c := dialT(t, d.opts())
	ctx := context.Background()
	if _, err := c.Output(ctx, fmt.Sprintf("head -c %d /dev/zero", MaxOutput+1), nil); err == nil || !strings.Contains(err.Error(), "printed more than") {
		t.Fatalf("err = %v, want the bound", err)
	}
	out, err := c.Output(ctx, fmt.Sprintf("head -c %d /dev/zero", MaxOutput), nil)
	if err != nil || len(out) != MaxOutput {
		t.Fatalf("exactly MaxOutput: %d bytes, %v", len(out), err)
	}
}
