// Package sshtest runs a real OpenSSH sshd on a loopback port with throw-away
// "device" users, for tests and demos that need a genuine SSH peer.
//
// A Server owns a temporary directory holding its host key, sshd_config,
// pid file and log; it listens on 127.0.0.1 only, refuses root logins and
// admits only the users it created. Users get a home directory, an
// authorized_keys file, an optional password, an optional sudoers drop-in
// limited to named commands, and a `reboot` stand-in in ~/bin that only
// records that it was called. Close kills sshd, deletes the users (userdel -r)
// and their sudoers drop-ins, and removes the directory.
//
// Creating users and running sshd needs root; Start reports a clear error when
// a required program (sshd, useradd, sudo) is missing.
//
// In a test:
//
//	srv := sshtest.New(t, sshtest.Config{NoSFTP: false, Password: true})
//	key, err := sshtest.GenerateKey(filepath.Join(t.TempDir(), "id_ed25519"))
//	dev, err := srv.AddUser(sshtest.UserConfig{
//		Keys: []ssh.PublicKey{key.PublicKey()}, Password: "secret", Sudo: []string{"id"}})
//	// log in to srv.Host:srv.Port as dev.Name, trusting srv.KnownHostsLine();
//	// dev.Path("migrate") is where an upload to "migrate" lands;
//	// dev.RebootCalls() counts `sudo reboot`s; srv.KillSessions() drops every
//	// connection; srv.ChangeHostKey() makes the device look reinstalled.
//
// Outside tests (a demo), Start and Close do the same without testing.TB.
package sshtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// UserPrefix starts every user name this package creates; sshd admits only
// names matching it.
const UserPrefix = "bmt"

// Config selects how the sshd is set up.
type Config struct {
	// NoSFTP leaves the sftp Subsystem out of sshd_config, like a device
	// whose SSH server has no SFTP.
	NoSFTP bool
	// Password enables password and keyboard-interactive authentication.
	Password bool
	// NetNS runs sshd inside that network namespace (see Hidden), listening
	// on ListenAddress ("": 127.0.0.1).
	NetNS         string
	ListenAddress string
	// MaxStartups is sshd's MaxStartups ("": 50:30:100).
	MaxStartups string
	// RootKeys let root in with these keys and no password, as balenaOS's
	// host SSH does (the keys of config.json's os.sshKeys); none: root is
	// refused.
	RootKeys []ssh.PublicKey
}

// Server is a running sshd and the users created for it.
type Server struct {
	Host string // Config.ListenAddress, else 127.0.0.1
	Port int
	Dir  string // temporary directory with host key, config, log

	cfg     Config
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	hostKey ssh.PublicKey
	users   []*User
}

// required lists the programs Start and AddUser need; the test setup must
// install them (openssh-server, sudo, passwd).
func required() []string {
	return []string{"sshd", "useradd", "userdel", "usermod", "chpasswd", "visudo"}
}

// Start generates a host key, writes an sshd_config and starts sshd on a free
// loopback port. It needs root.
func Start(cfg Config) (*Server, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("sshtest: must run as root (creates users, runs sshd)")
	}
	for _, p := range required() {
		if _, err := testenv.LookPath(p); err != nil {
			return nil, fmt.Errorf("sshtest: %s not found: install openssh-server, sudo and passwd (scripts/test does)", p)
		}
	}
	reapDead()
	dir, err := os.MkdirTemp("", "sshtest-")
	if err != nil {
		return nil, fmt.Errorf("sshtest: %w", err)
	}
	s := &Server{Host: "127.0.0.1", Dir: dir, cfg: cfg}
	if cfg.ListenAddress != "" {
		s.Host = cfg.ListenAddress
	}
	if err := s.recordOwner(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sshtest: %w", err)
	}
	if err := s.setup(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// New is Start for tests: it fails t when the server cannot start (but skips
// when not running as root) and closes the server when the test ends.
func New(t TB, cfg Config) *Server {
	t.Helper()
	testenv.NeedRoot(t, "sshtest creates users and runs sshd")
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("sshtest close: %v", err)
		}
	})
	return s
}

// TB is what New needs of a test.
type TB interface {
	testenv.TB
	Errorf(format string, args ...any)
	Cleanup(func())
}

func (s *Server) setup() error {
	// sshd insists on its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("sshtest: %w", err)
	}
	if err := s.writeHostKey(); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("sshtest: free port: %w", err)
	}
	s.Port = port
	if len(s.cfg.RootKeys) > 0 {
		var keys []byte
		for _, k := range s.cfg.RootKeys {
			keys = append(keys, ssh.MarshalAuthorizedKey(k)...)
		}
		// sshd's StrictModes refuses a file under the world-writable /tmp.
		if err := os.MkdirAll(filepath.Dir(s.rootKeysFile()), 0o700); err != nil {
			return fmt.Errorf("sshtest: %w", err)
		}
		if err := os.WriteFile(s.rootKeysFile(), keys, 0o600); err != nil {
			return fmt.Errorf("sshtest: %w", err)
		}
	}
	return os.WriteFile(filepath.Join(s.Dir, "sshd_config"), []byte(s.config()), 0o600)
}

func (s *Server) writeHostKey() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("sshtest: host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sshtest host key")
	if err != nil {
		return fmt.Errorf("sshtest: host key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "host_ed25519"), pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("sshtest: host key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("sshtest: host key: %w", err)
	}
	s.hostKey = sp
	return nil
}

func (s *Server) config() string {
	yesNo := map[bool]string{true: "yes", false: "no"}
	var b strings.Builder
	fmt.Fprintf(&b, "Port %d\nListenAddress %s\n", s.Port, s.Host)
	fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(s.Dir, "host_ed25519"))
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(s.Dir, "sshd.pid"))
	if len(s.cfg.RootKeys) > 0 {
		b.WriteString("PermitRootLogin prohibit-password\nAllowUsers " + UserPrefix + "* root\nStrictModes yes\n")
	} else {
		b.WriteString("PermitRootLogin no\nAllowUsers " + UserPrefix + "*\nStrictModes yes\n")
	}
	b.WriteString("PubkeyAuthentication yes\nAuthorizedKeysFile .ssh/authorized_keys\nPermitUserEnvironment yes\n")
	fmt.Fprintf(&b, "PasswordAuthentication %s\nKbdInteractiveAuthentication %s\n", yesNo[s.cfg.Password], yesNo[s.cfg.Password])
	b.WriteString("UsePAM yes\nUseDNS no\nPrintMotd no\nPrintLastLog no\nX11Forwarding no\n")
	startups := s.cfg.MaxStartups
	if startups == "" {
		startups = "50:30:100"
	}
	b.WriteString("MaxStartups " + startups + "\nMaxSessions 50\nLogLevel VERBOSE\n")
	if !s.cfg.NoSFTP {
		b.WriteString("Subsystem sftp /usr/lib/openssh/sftp-server\n")
	}
	if len(s.cfg.RootKeys) > 0 {
		// Last: a Match block runs to the end of the file.
		fmt.Fprintf(&b, "Match User root\n\tAuthorizedKeysFile %s\n", s.rootKeysFile())
	}
	return b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs sshd in the foreground (-D) and waits until it accepts
// connections.
func (s *Server) start() error {
	sshd, err := testenv.LookPath("sshd")
	if err != nil {
		return fmt.Errorf("sshtest: %w", err)
	}
	cfgPath := filepath.Join(s.Dir, "sshd_config")
	if out, err := exec.Command(sshd, "-t", "-f", cfgPath).CombinedOutput(); err != nil {
		return fmt.Errorf("sshtest: sshd -t: %v: %s", err, out)
	}
	args := []string{sshd, "-D", "-f", cfgPath, "-E", filepath.Join(s.Dir, "sshd.log")}
	if s.cfg.NetNS != "" {
		// ip execs sshd in place: the pid stays sshd's.
		args = append([]string{"ip", "netns", "exec", s.cfg.NetNS}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sshtest: start sshd: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("sshtest: sshd exited at start-up: %s", s.Log())
		default:
		}
		if s.cfg.NetNS != "" {
			// Not reachable from here: wait for sshd to say it listens.
			if strings.Contains(s.Log(), "Server listening on") {
				return nil
			}
		} else if c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("sshtest: sshd did not listen on %s within 10s: %s", s.Addr(), s.Log())
}

// stop kills sshd and every session process it forked.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	s.killDescendants(s.cmd.Process.Pid)
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Addr is "127.0.0.1:<port>".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// HostKey is the server's current public host key.
func (s *Server) HostKey() ssh.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostKey
}

// KnownHostsLine is a known_hosts line for the current host key.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey())
}

// Log returns sshd's log so far (for failure messages).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sshd.log"))
	return string(b)
}

// ChangeHostKey replaces the host key and restarts sshd on the same port,
// like a device that was reinstalled.
func (s *Server) ChangeHostKey() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
	if err := s.writeHostKey(); err != nil {
		return err
	}
	return s.start()
}

// KillSessions SIGKILLs every process sshd forked for a connection (the
// listener keeps running): an abrupt drop of all open connections.
func (s *Server) KillSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.killDescendants(s.cmd.Process.Pid)
	}
}

// killDescendants kills every process below pid, found through /proc.
func (s *Server) killDescendants(pid int) {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentPID(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			walk(c)
			syscall.Kill(c, syscall.SIGKILL)
		}
	}
	walk(pid)
}

func parentPID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// Close stops sshd, removes every user created through s and its sudoers
// drop-in, and deletes the server's directory. It returns the first error.
func (s *Server) Close() error {
	s.mu.Lock()
	s.stop()
	users := s.users
	s.users = nil
	s.mu.Unlock()
	var first error
	for _, u := range users {
		if err := u.remove(); err != nil && first == nil {
			first = err
		}
	}
	if err := os.RemoveAll(s.Dir); err != nil && first == nil {
		first = err
	}
	if len(s.cfg.RootKeys) > 0 {
		if err := os.RemoveAll(filepath.Dir(s.rootKeysFile())); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// rootKeysFile holds the keys root logs in with (Config.RootKeys).
func (s *Server) rootKeysFile() string {
	return filepath.Join("/run", filepath.Base(s.Dir), "root_authorized_keys")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a program and returns its combined output in the error.
func run(name string, args ...string) error {
	p, err := testenv.LookPath(name)
	if err != nil {
		return err
	}
	out, err := exec.Command(p, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// lines splits text into non-empty lines.
func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
