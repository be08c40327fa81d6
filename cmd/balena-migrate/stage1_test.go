package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// buildCmd builds this command once per test.
func buildCmd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "balena-migrate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runCmd(t *testing.T, bin, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

func TestStage1Usage(t *testing.T) {
	bin := buildCmd(t)
	dir := t.TempDir()
	logLine := regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ balena-migrate\] ERROR: `)

	stdout, stderr, code := runCmd(t, bin, dir)
	if code != 2 || !logLine.MatchString(stdout) || !strings.Contains(stdout, "balena-migrate.conf not found") || !strings.Contains(stderr, "pass -c FILE") {
		t.Fatalf("no config: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if class, _ := verdict(t, stdout); class != "config_error" {
		t.Errorf("no config: class %q, want config_error", class)
	}
	if err := os.WriteFile(filepath.Join(dir, "my.conf"), []byte("DEBUG=TRUE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if stdout, _, code := runCmd(t, bin, dir, "-c", "my.conf"); code != 2 || !strings.Contains(stdout, "IMAGE_NAME is not set") {
		t.Fatalf("-c without IMAGE_NAME: exit %d: %s", code, stdout)
	}
	stdout, stderr, code = runCmd(t, bin, dir, "stray")
	if code != 2 || !strings.Contains(stderr, `unexpected argument "stray"`) {
		t.Fatalf("stray argument: exit %d: %s", code, stderr)
	}
	if class, _ := verdict(t, stdout); class != "config_error" {
		t.Errorf("stray argument: class %q, want config_error", class)
	}
	stdout, _, code = runCmd(t, bin, dir, "-h")
	for _, flag := range []string{"--config", "-c", "--home", "--reboot", "-r", "--balena-cfg", "--bad-blocks", "--write-speed", "--pretend", "--no-os-check"} {
		if code != 0 || !strings.Contains(stdout, flag) {
			t.Errorf("-h lacks %s (exit %d)", flag, code)
		}
	}
}

// fleetVerdict is the pattern the fleet worker applies to the last line
// (class words are lower case, digits and underscores: "stage1").
var fleetVerdict = regexp.MustCompile(`ERROR: failed \(([a-z0-9_]+)\): `)

// verdict checks that the last stdout line is the failure line and returns
// its class and message.
func verdict(t *testing.T, stdout string) (class, msg string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	full := regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ balena-migrate\] ERROR: failed \(([a-z0-9_]+)\): (.+)$`)
	m := full.FindStringSubmatch(last)
	if m == nil || fleetVerdict.FindStringSubmatch(last)[1] != m[1] {
		t.Fatalf("last line is not a verdict: %q", last)
	}
	return m[1], m[2]
}

// The real binary, run as root in a chroot that looks like a device, ends
// with the verdict line naming the class of what stopped it.
func TestStage1VerdictLine(t *testing.T) {
	testenv.NeedRoot(t, "chroot")
	bin := filepath.Join(t.TempDir(), "balena-migrate")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, osRelease, class, words string
	}{
		{"balenaOS", "ID=balena-os\nPRETTY_NAME=\"balenaOS 2.80.3\"\n", "already_balena", "needs no migration"},
		{"old ubuntu", "ID=ubuntu\nVERSION_ID=\"12.04\"\n", "os", "ubuntu 12.04"},
		{"no os-release", "", "os", "/etc/os-release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"run", "etc", "mig", "proc"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// the binary finds itself through /proc/self/exe
			if err := syscall.Mount("proc", filepath.Join(root, "proc"), "proc", 0, ""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Unmount(filepath.Join(root, "proc"), syscall.MNT_DETACH) })
			if tc.osRelease != "" {
				mustWrite(t, filepath.Join(root, "etc/os-release"), tc.osRelease)
			}
			mustWrite(t, filepath.Join(root, "mig/balena-migrate.conf"), "IMAGE_NAME=balena-genericx86-64.img.gz\n")
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "mig/balena-migrate"), data, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/mig/balena-migrate", "--home", "/mig")
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
			var stdout strings.Builder
			cmd.Stdout = &stdout
			err = cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("want exit 1, got %v\n%s", err, stdout.String())
			}
			class, msg := verdict(t, stdout.String())
			if class != tc.class || !strings.Contains(msg, tc.words) {
				t.Fatalf("verdict (%s) %q, want (%s) with %q", class, msg, tc.class, tc.words)
			}
		})
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
