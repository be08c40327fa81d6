package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

func TestPrecedence(t *testing.T) {
	env := Layer{Source: "environment", Values: map[string]string{SSHPort: "2200", SSHUser: "envuser", SSHHost: "envhost", ExecTimeout: "5"}}
	flags := Layer{Source: "command line", Values: map[string]string{SSHPort: "2201", SSHUser: "flaguser"}}
	file := Layer{Source: "settings file f", Values: map[string]string{SSHPort: "2202"}}
	s, err := Resolve(Migrate, env, flags, file)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, want, src string }{
		{SSHPort, "2202", "settings file f"},
		{SSHUser, "flaguser", "command line"},
		{SSHHost, "envhost", "environment"},
		{ConnAttempts, "3", "default"},
		{ExecTimeout, "5", "environment"},
	}
	for _, c := range cases {
		if s.Raw(c.name) != c.want || s.Source(c.name) != c.src {
			t.Errorf("%s = %q from %q, want %q from %q", c.name, s.Raw(c.name), s.Source(c.name), c.want, c.src)
		}
	}
	if s.Migrate.ExecTimeout != 5*time.Second || s.Unit.SSHPort != 2202 {
		t.Error("typed accessors disagree")
	}
	u, err := s.ForUnit(map[string]string{SSHPort: "2203", "MIG_CONN_RETRIES": "2", ExecTimeout: "7m"}, "unit-x-1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Unit.SSHPort != 2203 || u.Source(SSHPort) != "unit file unit-x-1" || u.Migrate.ExecTimeout != 7*time.Minute {
		t.Errorf("unit layer not applied: %v %v", u.Raw(SSHPort), u.Raw(ExecTimeout))
	}
	if s.Unit.SSHPort != 2202 {
		t.Error("ForUnit changed the worker's settings")
	}
}

func TestInvalidValuesNameSettingAndSource(t *testing.T) {
	cases := []struct {
		bin    Binary
		name   string
		value  string
		expect string
	}{
		{Migrate, SSHPort, "abc", "not a port"},
		{Migrate, SSHPort, "70000", "not a port"},
		{Migrate, ExecTimeout, "-5", "negative"},
		{Migrate, TxTimeout, "soon", "not a number of seconds"},
		{Migrate, HostKeyPolicy, "maybe", "strict, accept-new, off"},
		{CheckDone, Jobs, "0", "at least 1"},
		{Migrate, Cloud, "aws", "api, cli"},
	}
	for _, c := range cases {
		_, err := Resolve(c.bin, Layer{Source: "flag --x", Values: map[string]string{c.name: c.value}})
		var ie *InvalidError
		if !errors.As(err, &ie) || !errors.Is(err, usage.Err) {
			t.Errorf("%s=%q: err = %v, want InvalidError", c.name, c.value, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.name) || !strings.Contains(msg, "flag --x") || !strings.Contains(msg, c.expect) {
			t.Errorf("%s=%q: message %q lacks setting, source or %q", c.name, c.value, msg, c.expect)
		}
	}
}

func TestCfgDirAndArchiveExcludeEachOther(t *testing.T) {
	s, err := Resolve(Migrate, Layer{Source: "command line", Values: map[string]string{CfgArchive: "/x.tgz"}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.ForUnit(map[string]string{CfgDir: "/unit/dir"}, "u")
	if err != nil {
		t.Fatal(err)
	}
	if u.Unit.CfgArchive != "" || u.Raw(CfgDir) != "/unit/dir" {
		t.Fatalf("unit's cfg dir did not replace the worker's archive: %q %q", u.Raw(CfgDir), u.Raw(CfgArchive))
	}
	_, err = Resolve(Migrate, Layer{Source: "command line", Values: map[string]string{CfgArchive: "/x.tgz", CfgDir: "/d"}})
	if !errors.Is(err, usage.Err) {
		t.Fatalf("both given: err = %v", err)
	}
}

func TestSettingsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mig.cfg")
	// One file for all three programs: MIG_MAX_STATUS_AGE is check-done's,
	// MIG_APP migrate's and add-unit's; only a key nobody knows warns.
	os.WriteFile(p, []byte("MIG_SSH_USER=pi\nMIG_MAX_STATUS_AGE=10\nMIG_APP=org/x\nMIG_SSH_HOTS=typo\n"), 0o600)
	l, warns, err := ReadFileLayer(Migrate, p)
	if err != nil {
		t.Fatal(err)
	}
	if l.Values[SSHUser] != "pi" || l.Values[App] != "org/x" || len(l.Values) != 2 || len(warns) != 1 || !strings.Contains(warns[0], "MIG_SSH_HOTS") {
		t.Fatalf("values %v warns %v", l.Values, warns)
	}
	l, warns, err = ReadFileLayer(CheckDone, p)
	if err != nil || l.Values[MaxStatusAge] != "10" || len(warns) != 1 || !strings.Contains(warns[0], "MIG_SSH_HOTS") {
		t.Fatalf("check-done: values %v warns %v (%v)", l.Values, warns, err)
	}
	_, _, err = ReadFileLayer(Migrate, filepath.Join(dir, "missing"))
	if !errors.Is(err, usage.Err) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(p, []byte("MIG_SSH_USER=\"unterminated\n"), 0o600)
	if _, _, err = ReadFileLayer(Migrate, p); !errors.Is(err, usage.Err) {
		t.Fatalf("bad file: %v", err)
	}
}
