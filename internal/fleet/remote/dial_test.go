package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
)

func TestDialWithKeyRunsCommands(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	c := dialT(t, d.opts())
	if c.AuthMethod() != AuthPublicKey {
		t.Errorf("AuthMethod = %q, want publickey", c.AuthMethod())
	}
	if k := c.HostKey(); k == nil || !bytes.Equal(k.Marshal(), d.srv.HostKey().Marshal()) {
		t.Errorf("HostKey = %v, want the server's", k)
	}
	if got := runOut(t, c, "id -un; pwd"); got != d.user.Name+"\n"+d.user.Home {
		t.Errorf("id -un; pwd = %q", got)
	}
	arch, err := c.Arch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if local := runLocal(t, "uname", "-m"); arch != local {
		t.Errorf("Arch = %q, want %q", arch, local)
	}
	code, err := c.Run(context.Background(), "echo out; echo err >&2; exit 7", nil, nil)
	if err != nil || code != 7 {
		t.Errorf("exit 7: code %d, err %v", code, err)
	}
	// One writer for both streams, as a unit log is: nothing may be lost.
	for range 10 {
		var log bytes.Buffer
		if _, err := c.Run(context.Background(), "echo out; echo err >&2; echo out2", &log, &log); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"out\n", "err\n", "out2\n"} {
			if !strings.Contains(log.String(), want) {
				t.Fatalf("shared writer got %q, missing %q", log.String(), want)
			}
		}
	}
}

func TestDialWithPassword(t *testing.T) {
	d := newDevice(t, sshtest.Config{Password: true}, sshtest.UserConfig{Password: "Pw-dial-42"})
	o := d.passwordOpts(t)
	c := dialT(t, o)
	// keyboard-interactive is offered first and answered with the password.
	if c.AuthMethod() != AuthKeyboardInteractive {
		t.Errorf("AuthMethod = %q, want keyboard-interactive", c.AuthMethod())
	}
	if got := runOut(t, c, "id -un"); got != d.user.Name {
		t.Errorf("id -un = %q", got)
	}
	if s := o.String(); strings.Contains(s, o.Password) {
		t.Errorf("Options.String shows the password: %s", s)
	}
	if j, _ := json.Marshal(o); strings.Contains(string(j), o.Password) {
		t.Errorf("Options JSON shows the password: %s", j)
	}
}

func TestAuthFailures(t *testing.T) {
	d := newDevice(t, sshtest.Config{Password: true}, sshtest.UserConfig{Password: "Pw-right-1"})
	other := filepath.Join(t.TempDir(), "other")
	if _, err := sshtest.GenerateKey(other); err != nil {
		t.Fatal(err)
	}
	wrongKey := d.opts()
	wrongKey.KeyFiles = []string{other}
	wrongPw := d.passwordOpts(t)
	wrongPw.Password = "Pw-wrong-2"
	missing := d.opts()
	missing.KeyFiles = []string{filepath.Join(t.TempDir(), "absent")}
	for name, o := range map[string]Options{"wrong key": wrongKey, "wrong password": wrongPw, "missing key file": missing} {
		_, err := Dial(context.Background(), o)
		if classOf(err) != ErrAuth {
			t.Errorf("%s: class %v, err %v", name, classOf(err), err)
		}
		if err != nil && strings.Contains(err.Error(), "Pw-") {
			t.Errorf("%s: error shows a password: %v", name, err)
		}
	}
	_, err := Dial(context.Background(), missing)
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("missing key file error does not name the file: %v", err)
	}
}

func TestHostKeyPolicies(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	fresh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	o := d.opts()
	o.KnownHosts = fresh

	if _, err := Dial(context.Background(), o); classOf(err) != ErrHostKey || !isChanged(err, false) {
		t.Fatalf("strict, unknown host: want host_key (not changed), got %v", err)
	}
	o.HostKeyPolicy = AcceptNew
	dialT(t, o).Close()
	data, _ := os.ReadFile(fresh)
	if got, want := strings.TrimSpace(string(data)), d.srv.KnownHostsLine(); got != want {
		t.Fatalf("accept-new recorded %q, want %q", got, want)
	}
	o.HostKeyPolicy = Strict
	dialT(t, o).Close() // recorded key now satisfies strict

	if err := d.srv.ChangeHostKey(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []HostKeyPolicy{Strict, AcceptNew} {
		o.HostKeyPolicy = p
		_, err := Dial(context.Background(), o)
		if !errors.Is(err, ErrHostKey) || !isChanged(err, true) {
			t.Errorf("%s, changed key: want changed host_key error, got %v", p, err)
		}
	}
	after, _ := os.ReadFile(fresh)
	if string(after) != string(data) {
		t.Errorf("known_hosts modified after a changed key:\n%s", after)
	}
	o.HostKeyPolicy = Off
	dialT(t, o).Close()
}

func isChanged(err error, want bool) bool {
	var hk *HostKeyError
	return errors.As(err, &hk) && hk.Changed == want
}

func TestAcceptNewConcurrentDialsRecordOnce(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	o := d.opts()
	o.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, o.KnownHosts, "# operator comment without newline")
	o.HostKeyPolicy = AcceptNew
	dialConcurrently(t, nil, o, 6)
	data, _ := os.ReadFile(o.KnownHosts)
	want := "# operator comment without newline\n" + d.srv.KnownHostsLine() + "\n"
	if string(data) != want {
		t.Errorf("known_hosts after 6 concurrent accept-new dials:\n%q\nwant\n%q", data, want)
	}
}

func TestDialNetworkErrorClasses(t *testing.T) {
	base := Options{User: "nobody", Password: "x", NoAgent: true, HostKeyPolicy: Off, ConnectTimeout: 2 * time.Second}

	// A port nobody listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	refused := base
	refused.Host, refused.Port = "127.0.0.1", port

	// A listener that accepts and never says a word.
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	mute := base
	mute.Host, mute.Port, mute.ConnectTimeout = "127.0.0.1", silent.Addr().(*net.TCPAddr).Port, 500*time.Millisecond

	dns := base
	dns.Host = "device.does-not-exist.invalid"

	for want, o := range map[error]Options{ErrRefused: refused, ErrTimeout: mute, ErrDNS: dns} {
		start := time.Now()
		_, err := Dial(context.Background(), o)
		if classOf(err) != want {
			t.Errorf("%v: class %v, err %v", want, classOf(err), err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s: took %v", want, time.Since(start))
		}
	}
}

func TestClassifyUnreachable(t *testing.T) {
	for _, errno := range []error{syscallEHOSTUNREACH, syscallENETUNREACH} {
		err := classifyNet(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}, nil)
		if classOf(err) != ErrUnreachable {
			t.Errorf("%v: class %v", errno, classOf(err))
		}
	}
	if classifyNet(errors.New("x"), nil) == nil || hasClass(classifyNet(errors.New("x"), nil)) {
		t.Error("an unrecognised error without fallback must stay unclassified")
	}
	if c := classOf(withClass(ErrTransfer, withClass(ErrTimeout, errors.New("x")))); c != ErrTimeout {
		t.Errorf("first class must stick, got %v", c)
	}
}

func TestRunTimeoutKillsCommand(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	c := dialT(t, d.opts())
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var out strings.Builder
	start := time.Now()
	_, err := c.Run(ctx, "echo started; sleep 30", &out, nil)
	if classOf(err) != ErrTimeout || time.Since(start) > 5*time.Second {
		t.Fatalf("want timeout within 5s, got %v after %v", err, time.Since(start))
	}
	if out.String() != "started\n" {
		t.Errorf("output before the timeout = %q", out.String())
	}
	// The connection is still usable.
	if got := runOut(t, c, "echo again"); got != "again" {
		t.Errorf("after timeout: %q", got)
	}
}

// TestKeepAliveDetectsFrozenLink runs the connection through an in-process
// TCP relay that stops relaying, like a device that vanished without a
// reset: the keepalives go unanswered and the running command fails with a
// timeout instead of hanging.
func TestKeepAliveDetectsFrozenLink(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	relay, freeze := freezableRelay(t, d.srv.Addr())
	o := d.opts()
	o.Host, o.Port = "127.0.0.1", relay
	o.KnownHosts = filepath.Join(t.TempDir(), "kh")
	o.HostKeyPolicy, o.KeepAlive = AcceptNew, 200*time.Millisecond
	c := dialT(t, o)
	if got := runOut(t, c, "echo alive"); got != "alive" {
		t.Fatalf("before the freeze: %q", got)
	}
	freeze()
	start := time.Now()
	_, err := c.Run(context.Background(), "sleep 30", nil, nil)
	if classOf(err) != ErrTimeout || time.Since(start) > 5*time.Second {
		t.Fatalf("frozen link: want timeout within 5s, got %v after %v", err, time.Since(start))
	}
}

// freezableRelay forwards a local port to addr until freeze is called;
// after that it holds the connections open and forwards nothing.
func freezableRelay(t *testing.T, addr string) (port int, freeze func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	frozen := make(chan struct{})
	var once sync.Once
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			select {
			case <-frozen:
				<-time.After(time.Minute)
				return
			default:
			}
			if err != nil {
				dst.Close()
				return
			}
			dst.Write(buf[:n])
		}
	}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, func() { once.Do(func() { close(frozen) }) }
}

func TestDefaultKeyFilesAndAgent(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	home := t.TempDir()
	t.Setenv("HOME", home)
	key, err := os.ReadFile(d.key)
	if err != nil {
		t.Fatal(err)
	}
	o := d.opts()
	o.KeyFiles = nil

	// Nothing in ~/.ssh and no agent: no way to log in.
	if _, err := Dial(context.Background(), o); classOf(err) != ErrAuth {
		t.Errorf("no keys: %v", err)
	}
	// ~/.ssh/id_ecdsa is one of the defaults (the content type does not matter).
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	writeFile(t, filepath.Join(home, ".ssh", "id_ecdsa"), string(key))
	if c := dialT(t, o); c.AuthMethod() != AuthPublicKey {
		t.Errorf("default key: method %q", c.AuthMethod())
	}
	os.Remove(filepath.Join(home, ".ssh", "id_ecdsa"))

	// The key held by a real ssh-agent, found through SSH_AUTH_SOCK.
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agentCmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agentCmd.Start(); err != nil {
		t.Fatalf("ssh-agent (openssh-client) missing: %v", err)
	}
	t.Cleanup(func() { agentCmd.Process.Kill(); agentCmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", d.key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	o.NoAgent = false
	if c := dialT(t, o); c.AuthMethod() != AuthPublicKey {
		t.Errorf("agent: method %q", c.AuthMethod())
	}
}
