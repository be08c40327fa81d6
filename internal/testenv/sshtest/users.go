package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/fleetmig/balena-migrate/internal/testenv"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// UserConfig describes a device user.
type UserConfig struct {
	// Password is set with chpasswd; empty leaves the account without a
	// usable password (key logins only).
	Password string
	// Keys are written to ~/.ssh/authorized_keys.
	Keys []ssh.PublicKey
	// Sudo lists commands the user may run as root with sudo. Bare names are
	// looked up in ~/bin, then in /usr/bin and /bin. When the list is not
	// empty the ~/bin/reboot stand-in is allowed too. sudo's secure_path for
	// the user is ~/bin and the usual bin directories without any sbin, so
	// `sudo reboot` reaches the stand-in, never the real reboot.
	Sudo []string
	// SudoPassword makes sudo ask for the user's password (no NOPASSWD).
	SudoPassword bool
}

// User is a device account created by AddUser.
type User struct {
	Name     string
	Home     string
	Password string

	sudoers string // drop-in file, "" when none
}

// AddUser creates a user with a unique name, a home directory, ~/bin with a
// `reboot` stand-in that only records its calls, ~/.ssh/environment putting
// ~/bin first on PATH, and what cfg asks for. Close removes it.
func (s *Server) AddUser(cfg UserConfig) (*User, error) {
	u := &User{Name: UserPrefix + randomHex(4), Password: cfg.Password}
	u.Home = filepath.Join("/home", u.Name)
	// Recorded first, so even a kill right after useradd leaves nothing.
	if err := s.recordUser(u.Name); err != nil {
		return nil, fmt.Errorf("sshtest: %w", err)
	}
	if err := accounts(func() error { return run("useradd", "-m", "-d", u.Home, "-s", "/bin/bash", u.Name) }); err != nil {
		return nil, fmt.Errorf("sshtest: %w", err)
	}
	s.mu.Lock()
	s.users = append(s.users, u)
	s.mu.Unlock()

	if err := u.setup(cfg); err != nil {
		return nil, fmt.Errorf("sshtest: user %s: %w", u.Name, err)
	}
	return u, nil
}

func (u *User) setup(cfg UserConfig) error {
	// useradd leaves the account locked ("!"), which sshd refuses even for
	// key logins: "*" unlocks it without allowing any password.
	err := accounts(func() error {
		if err := run("usermod", "-p", "*", u.Name); err != nil || cfg.Password == "" {
			return err
		}
		return chpasswd(u.Name, cfg.Password)
	})
	if err != nil {
		return err
	}
	if err := u.writeFiles(cfg.Keys); err != nil {
		return err
	}
	if len(cfg.Sudo) > 0 {
		return u.writeSudoers(cfg.Sudo, cfg.SudoPassword)
	}
	return nil
}

func chpasswd(name, password string) error {
	p, err := testenv.LookPath("chpasswd")
	if err != nil {
		return err
	}
	cmd := exec.Command(p)
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		// The output never holds the password; chpasswd does not echo it.
		return fmt.Errorf("chpasswd: %v: %s", err, out)
	}
	return nil
}

// writeFiles creates ~/bin/reboot, ~/.ssh/authorized_keys and
// ~/.ssh/environment, owned by the user.
func (u *User) writeFiles(keys []ssh.PublicKey) error {
	var ak strings.Builder
	for _, k := range keys {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	// Each argument is logged in brackets, so that "0 tryboot" shows as
	// one argument.
	reboot := fmt.Sprintf("#!/bin/sh\n# sshtest stand-in: records the call, reboots nothing.\n{ printf reboot; for a; do printf ' [%%s]' \"$a\"; done; echo; } >> %s\n",
		filepath.Join(u.Home, "reboot.log"))
	env := fmt.Sprintf("PATH=%s:/usr/local/bin:/usr/bin:/bin\n", filepath.Join(u.Home, "bin"))
	files := []struct {
		rel  string
		data string
		mode os.FileMode
	}{
		{"bin/reboot", reboot, 0o755},
		{".ssh/authorized_keys", ak.String(), 0o600},
		{".ssh/environment", env, 0o600},
	}
	for _, f := range files {
		p := filepath.Join(u.Home, f.rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(u.Home, "bin"), 0o755); err != nil {
		return err
	}
	return run("chown", "-R", u.Name+":", u.Home)
}

func (u *User) writeSudoers(cmds []string, withPassword bool) error {
	bin := filepath.Join(u.Home, "bin")
	paths := []string{filepath.Join(bin, "reboot")}
	for _, c := range cmds {
		p, err := u.resolve(c)
		if err != nil {
			return err
		}
		paths = append(paths, p)
	}
	tag := "NOPASSWD: "
	if withPassword {
		tag = "PASSWD: "
	}
	rule := fmt.Sprintf("Defaults:%s secure_path=\"%s:/usr/local/bin:/usr/bin:/bin\"\nDefaults:%s !lecture\n%s ALL=(root) %s%s\n",
		u.Name, bin, u.Name, u.Name, tag, strings.Join(paths, ", "))
	// Drop-in names must not contain a dot or sudo ignores them.
	file := filepath.Join("/etc/sudoers.d", "sshtest-"+u.Name)
	tmp := file + "~" // sudo ignores names ending in ~ until the rename
	if err := os.WriteFile(tmp, []byte(rule), 0o440); err != nil {
		return err
	}
	if err := run("visudo", "-c", "-q", "-f", tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	u.sudoers = file
	return nil
}

func (u *User) resolve(cmd string) (string, error) {
	if filepath.IsAbs(cmd) {
		return cmd, nil
	}
	for _, d := range []string{filepath.Join(u.Home, "bin"), "/usr/bin", "/bin"} {
		p := filepath.Join(d, cmd)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("sudo command %q not found in ~/bin, /usr/bin, /bin", cmd)
}

// Path is rel inside the user's home directory.
func (u *User) Path(rel string) string { return filepath.Join(u.Home, rel) }

// RebootCalls is how many times the ~/bin/reboot stand-in ran.
func (u *User) RebootCalls() int { return len(u.Reboots()) }

// Reboots are the ~/bin/reboot stand-in's calls, one line each: "reboot"
// and each argument in brackets ("reboot [0 tryboot]").
func (u *User) Reboots() []string {
	b, err := os.ReadFile(u.Path("reboot.log"))
	if err != nil {
		return nil
	}
	return lines(b)
}

// remove deletes the sudoers drop-in and the account with its home.
func (u *User) remove() error {
	var first error
	if u.sudoers != "" {
		if err := os.Remove(u.sudoers); err != nil && !errors.Is(err, os.ErrNotExist) {
			first = err
		}
	}
	// Processes left by a killed session would make userdel refuse.
	killUserProcesses(u.Name)
	if err := accounts(func() error { return run("userdel", "-r", "-f", u.Name) }); err != nil && first == nil {
		first = fmt.Errorf("sshtest: %w", err)
	}
	return first
}

// GenerateKey writes a new ed25519 private key in OpenSSH format to path
// (mode 0600) and its public half to path.pub, and returns the signer.
func GenerateKey(path string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, filepath.Base(path))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return nil, err
	}
	return signer, nil
}

// killUserProcesses SIGKILLs, by pid, the processes running as the user.
func killUserProcesses(name string) {
	uid, err := exec.Command("id", "-u", name).Output()
	if err != nil {
		return
	}
	want := "Uid:\t" + strings.TrimSpace(string(uid)) + "\t"
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err == nil && strings.Contains(string(b), want) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// accounts runs f, which changes /etc/passwd or /etc/shadow, holding a
// machine-wide lock: test binaries of several packages run at once, and
// useradd gives up when another one holds the password file.
func accounts(f func() error) error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "sshtest-accounts.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	return f()
}

// Login is what a client needs to log in to a server as one user: a key
// file the user authorises and a known_hosts file that knows the server.
type Login struct {
	User       *User
	Key        string // private key file; its public half is Key+".pub"
	KnownHosts string
}

// AddLogin creates a user as AddUser does, authorising a new key written
// to dir/id_ed25519, and writes dir/known_hosts trusting the server.
func (s *Server) AddLogin(dir string, cfg UserConfig) (*Login, error) {
	l := &Login{Key: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	signer, err := GenerateKey(l.Key)
	if err != nil {
		return nil, fmt.Errorf("sshtest: %w", err)
	}
	cfg.Keys = append(cfg.Keys, signer.PublicKey())
	if l.User, err = s.AddUser(cfg); err != nil {
		return nil, err
	}
	if err := os.WriteFile(l.KnownHosts, []byte(s.KnownHostsLine()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("sshtest: %w", err)
	}
	return l, nil
}
