package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
	if err := os.WriteFile(filepath.Join(dir, "my.conf"), []byte("DEBUG=TRUE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if stdout, _, code := runCmd(t, bin, dir, "-c", "my.conf"); code != 2 || !strings.Contains(stdout, "IMAGE_NAME is not set") {
		t.Fatalf("-c without IMAGE_NAME: exit %d: %s", code, stdout)
	}
	if _, stderr, code := runCmd(t, bin, dir, "stray"); code != 2 || !strings.Contains(stderr, `unexpected argument "stray"`) {
		t.Fatalf("stray argument: exit %d: %s", code, stderr)
	}
	stdout, _, code = runCmd(t, bin, dir, "-h")
	for _, flag := range []string{"--config", "-c", "--home", "--reboot", "-r", "--balena-cfg", "--bad-blocks", "--write-speed", "--pretend"} {
		if code != 0 || !strings.Contains(stdout, flag) {
			t.Errorf("-h lacks %s (exit %d)", flag, code)
		}
	}
}
