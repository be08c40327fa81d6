package session

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

// settings resolves a worker's settings, then a unit's on top.
func settings(t *testing.T, worker, unit map[string]string) *config.Settings {
	t.Helper()
	s, err := config.Resolve(config.CheckDone, config.Layer{Source: "test", Values: worker})
	if err != nil {
		t.Fatal(err)
	}
	u := map[string]string{config.SSHHost: "gw-1.example", config.SSHUser: "pi"}
	for k, v := range unit {
		u[k] = v
	}
	s, err = s.ForUnit(u, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOptionsFromSettings(t *testing.T) {
	for _, tc := range []struct {
		name         string
		worker, unit map[string]string
		check        func(remote.Options) bool
		warn         string // a warning that names where the option came from
		err          string // a usage error naming the setting
	}{
		{name: "defaults give way to ssh_config", check: func(o remote.Options) bool {
			return o.Host == "gw-1.example" && o.User == "pi" && o.Port == 0 && o.KnownHosts == "" && o.HostKeyPolicy == "" &&
				o.KeyFiles == nil && o.ConnectTimeout == 30*time.Second
		}},
		{name: "the worker's settings", worker: map[string]string{config.KnownHosts: "/k/known", config.HostKeyPolicy: "strict", config.ConnTimeout: "7"},
			check: func(o remote.Options) bool {
				return o.KnownHosts == "/k/known" && o.HostKeyPolicy == remote.Strict && o.ConnectTimeout == 7*time.Second
			}},
		{name: "the unit's port and key", unit: map[string]string{config.SSHPort: "2222", config.SSHKey: "/k/id"},
			check: func(o remote.Options) bool { return o.Port == 2222 && len(o.KeyFiles) == 1 && o.KeyFiles[0] == "/k/id" }},
		{name: "the unit's OpenSSH options beat the worker's", worker: map[string]string{config.DefSSHOpts: "-p 2200 -l admin"}, unit: map[string]string{config.SSHOpts: "-p 2201"},
			check: func(o remote.Options) bool { return o.Port == 2201 && o.User == "admin" }},
		{name: "an ignored option is named", worker: map[string]string{config.DefSSHOpts: "-o Compression=yes"}, warn: "--ssh-opts (MIG_DEF_SSH_OPTS): "},
		{name: "a bad option of the unit", unit: map[string]string{config.SSHOpts: "-p seventy"}, err: "MIG_SSH_OPTS"},
	} {
		var warns []string
		o, err := fromSettings(settings(t, tc.worker, tc.unit), zerolog.Nop(), func(w string) { warns = append(warns, w) })
		switch {
		case tc.err != "":
			if !usage.Is(err) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want a usage error naming %s", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.check != nil && !tc.check(o):
			t.Errorf("%s: %+v", tc.name, o)
		case tc.warn != "" && (len(warns) != 1 || !strings.HasPrefix(warns[0], tc.warn)):
			t.Errorf("%s: warnings %q, want one starting %q", tc.name, warns, tc.warn)
		case tc.warn == "" && len(warns) > 0:
			t.Errorf("%s: warnings %q", tc.name, warns)
		}
	}
}

// Options completes what the settings leave open, as the dial will; Open
// dials with those options.
func TestOptionsAndOpen(t *testing.T) {
	var got remote.Options
	op := Opener[string]{Dial: func(_ context.Context, o remote.Options) (string, error) {
		got = o
		if o.Port != 22 {
			return "", errors.New("not resolved")
		}
		return "a session", nil
	}}
	s := settings(t, map[string]string{config.DefSSHOpts: "-F none"}, nil)
	o, err := op.Options(s, zerolog.Nop(), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := op.Open(context.Background(), o); err != nil || d != "a session" || got.Host != "gw-1.example" || got.User != "pi" {
		t.Fatalf("Open = %q, %v with %+v", d, err, got)
	}
	bad := settings(t, nil, map[string]string{config.SSHOpts: "-J bastion:99999"})
	if _, err := op.Options(bad, zerolog.Nop(), func(string) {}); !usage.Is(err) {
		t.Fatalf("a bad jump host: %v, want a usage error", err)
	}
}
