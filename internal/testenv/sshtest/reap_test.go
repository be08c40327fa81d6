package sshtest

import (
	"bufio"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv("SSHTEST_ORPHAN") != "" {
		// Child: start a server with a user, report, wait to be killed.
		s, err := Start(Config{})
		if err != nil {
			panic(err)
		}
		u, err := s.AddUser(UserConfig{Sudo: []string{"id"}})
		if err != nil {
			panic(err)
		}
		os.Stdout.WriteString(s.Dir + " " + u.Name + "\n")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// TestStartReapsWhatAKilledTestLeft kills a process that owns a server and
// a user, then checks the next Start removes the sshd, user and files.
func TestStartReapsWhatAKilledTestLeft(t *testing.T) {
	testenv.NeedRoot(t, "creates users and runs sshd")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "SSHTEST_ORPHAN=1")
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	dir, name, _ := strings.Cut(strings.TrimSpace(line), " ")
	sshdPid, _ := os.ReadFile(dir + "/sshd.pid")
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if _, err := user.Lookup(name); err != nil {
		t.Fatalf("the killed child's user %s does not exist: %v", name, err)
	}
	New(t, Config{}) // reaps
	if _, err := user.Lookup(name); err == nil {
		t.Errorf("user %s was not reaped", name)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s was not removed", dir)
	}
	if _, err := os.Stat("/etc/sudoers.d/sshtest-" + name); !os.IsNotExist(err) {
		t.Error("sudoers drop-in left")
	}
	if pid := strings.TrimSpace(string(sshdPid)); pid != "" {
		if _, err := os.Stat("/proc/" + pid + "/cmdline"); err == nil {
			if cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline"); strings.Contains(string(cmd), dir) {
				t.Errorf("sshd %s still running", pid)
			}
		}
	}
}
