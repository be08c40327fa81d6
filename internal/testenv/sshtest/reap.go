package sshtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A test process killed outright (a test binary's timeout panics, kill -9)
// never runs Close, and would leave sshd running and users behind on a
// machine that is used again. Each server therefore records its owner's
// pid and its users in its directory; Start reaps the servers of dead
// owners first.
const (
	ownerFile = "owner"
	usersFile = "users"
)

func (s *Server) recordOwner() error {
	return os.WriteFile(filepath.Join(s.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600)
}

func (s *Server) recordUser(name string) error {
	f, err := os.OpenFile(filepath.Join(s.Dir, usersFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, name)
	return err
}

// reapDead removes what servers of dead test processes left behind.
func reapDead() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "sshtest-*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(owner)))
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		reapServer(dir)
	}
}

func reapServer(dir string) {
	if data, err := os.ReadFile(filepath.Join(dir, "sshd.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && isOurSSHD(pid, dir) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	users, _ := os.ReadFile(filepath.Join(dir, usersFile))
	for _, name := range strings.Fields(string(users)) {
		if !strings.HasPrefix(name, UserPrefix) {
			continue
		}
		u := &User{Name: name, sudoers: filepath.Join("/etc/sudoers.d", "sshtest-"+name)}
		u.remove()
	}
	os.RemoveAll(dir)
}

// isOurSSHD checks that pid is the sshd started with dir's config, so a
// recycled pid is never killed.
func isOurSSHD(pid int, dir string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmd, []byte(filepath.Join(dir, "sshd_config")))
}
