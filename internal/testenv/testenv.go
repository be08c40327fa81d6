// Package testenv is where tests meet this machine: what a test needs from
// it (root, programs, cached images) and the helpers under it — sshtest
// (real sshd and device users), testimg (balenaOS-shaped images on loop
// devices), vmtest (qemu VMs) and fleetsim (the simulated fleet).
//
// A missing prerequisite skips a test on a developer's machine but fails it
// when CI is set: CI must never go green by running nothing.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
)

// TB is the part of testing.TB these helpers use. It keeps the testing
// package out of the non-test code that links them (the demo does).
type TB interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
}

// InCI reports whether the tests run under CI (the CI variable is set).
func InCI() bool { return os.Getenv("CI") != "" }

// Need skips t when ok is false, or fails it under CI.
func Need(t TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatal("missing prerequisite (CI is set, so this fails instead of skipping): " + what)
	}
	t.Skip("missing prerequisite: " + what)
}

// NeedRoot needs the test to run as root.
func NeedRoot(t TB, why string) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "root ("+why+")")
}

// NeedProgram needs name on PATH (or in /usr/sbin, /sbin) and returns its path.
func NeedProgram(t TB, name string) string {
	t.Helper()
	p, err := LookPath(name)
	Need(t, err == nil, fmt.Sprintf("%s (scripts/test-packages installs it)", name))
	return p
}

// NeedFile needs path to exist; hint says what makes it.
func NeedFile(t TB, path, hint string) {
	t.Helper()
	_, err := os.Stat(path)
	Need(t, err == nil, fmt.Sprintf("%s (%s)", path, hint))
}

// LookPath finds a program on PATH or in the sbin directories a non-login
// root shell may lack.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}

// Cache is the directory scripts/test-setup.d builds cached images and
// roots into (BALENA_MIGRATE_TEST_CACHE overrides the default).
func Cache() string {
	if c := os.Getenv("BALENA_MIGRATE_TEST_CACHE"); c != "" {
		return c
	}
	return "/var/cache/balena-migrate-test"
}
