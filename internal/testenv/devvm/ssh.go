package devvm

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Login is how a test logs into a VM: a key or a password.
type Login struct {
	User     string
	Key      string // private key file
	Password string
}

// RootLogin is the image's root login by key.
func (img Image) RootLogin() Login { return Login{User: "root", Key: img.Key} }

// UserLogin is the image's sudo user with its password.
func (img Image) UserLogin() (Login, error) {
	pw, err := os.ReadFile(img.Password)
	if err != nil {
		return Login{}, err
	}
	return Login{User: img.User, Password: strings.TrimSpace(string(pw))}, nil
}

func (l Login) config() (*ssh.ClientConfig, error) {
	cfg := &ssh.ClientConfig{User: l.User, Timeout: 10 * time.Second,
		// A throw-away VM on a loopback port: its host key is what the
		// product's own known_hosts handling is tested with, not here.
		HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	if l.Key != "" {
		pem, err := os.ReadFile(l.Key)
		if err != nil {
			return nil, err
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Key, err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if l.Password != "" {
		cfg.Auth = append(cfg.Auth, ssh.Password(l.Password))
	}
	return cfg, nil
}

// Addr is the host side of the SSH port forward.
func (m *Machine) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.SSHPort)) }

// Run runs cmd on the VM and returns its combined output.
func (m *Machine) Run(ctx context.Context, l Login, cmd string) (string, error) {
	cfg, err := l.config()
	if err != nil {
		return "", err
	}
	client, err := m.dial(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out lockedBuffer
	s.Stdout, s.Stderr = &out, &out
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("%s: %q: %w: %s", m.cfg.Name, cmd, err, out.String())
		}
		return out.String(), nil
	case <-ctx.Done():
		client.Close()
		return out.String(), ctx.Err()
	}
}

// dial connects and logs in within ctx and at most a minute: a guest that
// hangs (a kernel panic behind qemu's port forward) accepts TCP and never
// answers.
func (m *Machine) dial(ctx context.Context, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", m.Addr())
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, m.Addr(), cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// lockedBuffer collects stdout and stderr, which the SSH session copies
// from two goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitSSH waits until l can log in and run a command.
func (m *Machine) WaitSSH(ctx context.Context, l Login) error {
	var last error
	for {
		select {
		case <-m.done:
			return fmt.Errorf("%s: qemu exited (%v) before SSH answered (last: %v)", m.cfg.Name, m.err, last)
		default:
		}
		if _, last = m.Run(ctx, l, "true"); last == nil {
			return nil
		}
		if c := m.Console(); strings.Contains(c, "Kernel panic") {
			return fmt.Errorf("%s: kernel panic:\n%s", m.cfg.Name, lastLines(c, 8))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no SSH login as %s: %w (last: %v)", m.cfg.Name, l.User, ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
