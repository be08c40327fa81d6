package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

var fastRetry = balena.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

func newClient(t *testing.T, bin string) *Client {
	t.Helper()
	c, err := New(balena.Options{CLIPath: bin, Retry: fastRetry, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWhoami(t *testing.T) {
	bin := fakeCLI(t)
	c := newClient(t, bin)
	u, err := c.Whoami(context.Background())
	if err != nil || u.Username != "gh_ops" || u.Email != "ops@example.com" {
		t.Fatalf("Whoami = %+v, %v", u, err)
	}
	if got := argv(t, bin); len(got) != 1 || got[0] != "whoami" {
		t.Fatalf("argv %q", got)
	}
	control(t, bin, "logged-out", "")
	_, err = c.Whoami(context.Background())
	if !errors.Is(err, balena.ErrUnauthorized) || !strings.Contains(err.Error(), "run balena login") {
		t.Fatalf("logged out: %v", err)
	}
}

func TestWhoamiOutputs(t *testing.T) {
	tests := []struct {
		name, output, want string
		wantErr            error
	}{
		{"user", "== ACCOUNT INFORMATION\nUSERNAME: gh_ops\nEMAIL:    o@example.com\nURL:      balena-cloud.com\n", "gh_ops", nil},
		{"application key", "== ACCOUNT INFORMATION\nAPPLICATION: ops/fleet-one\nURL:         balena-cloud.com\n", "ops/fleet-one", nil},
		{"nothing useful", "hello\n", "", balena.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "balena")
			script := "#!/bin/sh\nprintf '" + tt.output + "'\n"
			if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			u, err := newClient(t, bin).Whoami(context.Background())
			if u.Username != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Whoami = %+v, %v; want %q, %v", u, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	bin := fakeCLI(t, "ops/fleet-one", "ops/fleet-two")
	c := newClient(t, bin)
	ctx := context.Background()
	uuid := balena.NewUUID()
	r := balena.Registration{Fleet: "ops/fleet-one", UUID: uuid, DeviceType: "raspberrypi4-64", Name: "unit 7",
		Tags: map[string]string{"migrate.unit": "unit 7", "migrate.host": "h1"}}
	d, err := c.Register(ctx, r)
	if err != nil || d.Existing || d.ID != 101 || d.UUID != uuid || d.DeviceType != "raspberrypi4-64" {
		t.Fatalf("first register: %+v, %v", d, err)
	}
	// The stand-in counts arguments: a name or tag value split at its
	// space would be refused.
	want := []string{"device register ops/fleet-one --uuid " + uuid + " --deviceType raspberrypi4-64",
		"device " + uuid + " --json", "device rename " + uuid + " unit 7",
		"tag set migrate.host h1 --device " + uuid, "tag set migrate.unit unit 7 --device " + uuid}
	if got := argv(t, bin); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("argv %q, want %q", got, want)
	}
	d2, err := c.Register(ctx, balena.Registration{Fleet: "ops/fleet-one", UUID: uuid})
	if err != nil || !d2.Existing || d2.ID != d.ID {
		t.Fatalf("second register: %+v, %v", d2, err)
	}
	devs, _ := os.ReadDir(filepath.Join(filepath.Dir(bin), "devices"))
	if len(devs) != 1 {
		t.Fatalf("%d devices after registering one UUID twice", len(devs))
	}
	tests := []struct {
		name, app, uuid string
		want            error
	}{
		{"registered in another fleet", "ops/fleet-two", uuid, balena.ErrConflict},
		{"unknown fleet", "ops/none", balena.NewUUID(), balena.ErrNotFound},
		{"bad UUID", "ops/fleet-one", "xyz", balena.ErrInvalid},
		{"no app", "", balena.NewUUID(), balena.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Register(ctx, balena.Registration{Fleet: tt.app, UUID: tt.uuid}); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDeviceConfig(t *testing.T) {
	bin := fakeCLI(t, "ops/fleet-one")
	c := newClient(t, bin)
	ctx := context.Background()
	uuid := balena.NewUUID()
	d, err := c.Register(ctx, balena.Registration{Fleet: "ops/fleet-one", UUID: uuid})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.DeviceConfig(ctx, d, "2.26.0")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg["uuid"] != uuid || cfg["os"] != "2.26.0" ||
		cfg["network"] != "ethernet" || cfg["appUpdatePollInterval"] != float64(600000) {
		t.Fatalf("config %s (%v)", raw, err)
	}
	lines := argv(t, bin)
	last := strings.Fields(lines[len(lines)-1])
	wantPrefix := []string{"config", "generate", "--device", uuid, "--version", "2.26.0",
		"--network", "ethernet", "--appUpdatePollInterval", "10", "--output"}
	if len(last) != len(wantPrefix)+1 || strings.Join(last[:len(wantPrefix)], " ") != strings.Join(wantPrefix, " ") {
		t.Fatalf("argv %q", last)
	}
	if _, err := os.Stat(last[len(last)-1]); !os.IsNotExist(err) {
		t.Errorf("the temporary config file %s was left behind (%v)", last[len(last)-1], err)
	}
	mode, _ := os.ReadFile(filepath.Join(filepath.Dir(bin), "output-mode"))
	if strings.TrimSpace(string(mode)) != "600" {
		t.Errorf("output file mode %q while the CLI wrote it, want 600", mode)
	}
	if _, err := c.DeviceConfig(ctx, balena.Device{ID: 5, UUID: balena.NewUUID()}, "2.26.0"); !errors.Is(err, balena.ErrNotFound) {
		t.Errorf("unregistered device: %v", err)
	}
	if _, err := c.DeviceConfig(ctx, d, ""); !errors.Is(err, balena.ErrInvalid) {
		t.Errorf("no version: %v", err)
	}
}

func TestIsOnline(t *testing.T) {
	bin := fakeCLI(t, "ops/fleet-one")
	c := newClient(t, bin)
	ctx := context.Background()
	uuid := balena.NewUUID()
	if on, err := c.IsOnline(ctx, uuid); on || !errors.Is(err, balena.ErrNotFound) {
		t.Fatalf("unknown device: %v, %v; want false, ErrNotFound", on, err)
	}
	if _, err := c.Register(ctx, balena.Registration{Fleet: "ops/fleet-one", UUID: uuid}); err != nil {
		t.Fatal(err)
	}
	if on, err := c.IsOnline(ctx, uuid); on || err != nil {
		t.Fatalf("offline device: %v, %v", on, err)
	}
	control(t, bin, "online/"+uuid, "")
	if on, err := c.IsOnline(ctx, uuid); !on || err != nil {
		t.Fatalf("online device: %v, %v", on, err)
	}
}

func TestFailureClasses(t *testing.T) {
	tests := []struct {
		name      string
		output    string // fail-next lines
		want      error
		wantCalls int
	}{
		{"DNS failure once, then fine", "getaddrinfo ENOTFOUND api.balena-cloud.com\n", nil, 2},
		{"network down throughout", strings.Repeat("Oops something went wrong, please check your connection and try again.\n", 3), balena.ErrTransient, 3},
		{"429 throughout", strings.Repeat("Request error: Too Many Requests\n", 4), balena.ErrTransient, 3},
		{"expired token", "Looks like the session token has expired.\n", balena.ErrUnauthorized, 1},
		{"request unauthorized", "Request error: Unauthorized\n", balena.ErrUnauthorized, 1},
		{"unknown failure", "Something odd happened\n", balena.ErrInvalid, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := fakeCLI(t)
			control(t, bin, "fail-next", tt.output)
			_, err := newClient(t, bin).Whoami(context.Background())
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if n := len(argv(t, bin)); n != tt.wantCalls {
				t.Errorf("%d runs, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	bin := fakeCLI(t)
	control(t, bin, "slow", "")
	c, err := New(balena.Options{CLIPath: bin, Retry: balena.RetryPolicy{Attempts: 1}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Whoami(context.Background())
	if !errors.Is(err, balena.ErrTransient) || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %v, want ErrTransient within the timeout", err, time.Since(start))
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := New(balena.Options{CLIPath: filepath.Join(t.TempDir(), "balena")})
	if err == nil || !strings.Contains(err.Error(), "--cloud api") {
		t.Fatalf("err = %v", err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		out  string
		want error
	}{
		{"BalenaDeviceNotFound: Device not found: 0123", balena.ErrNotFound},
		{"BalenaApplicationNotFound: Application not found: ops/x", balena.ErrNotFound},
		{"getaddrinfo ENOTFOUND api.balena-cloud.com", balena.ErrTransient},
		{"connect ECONNREFUSED 127.0.0.1:443", balena.ErrTransient},
		{"Request error: Service Unavailable", balena.ErrTransient},
		{`Request error: "uuid" must be unique.`, balena.ErrConflict},
		{"Login required: use the “balena login” command to log in.", balena.ErrUnauthorized},
		{"Request error: Unauthorized", balena.ErrUnauthorized},
		{"Unexpected argument: --foo", balena.ErrInvalid},
	}
	for _, tt := range tests {
		if got := classify(tt.out); got != tt.want {
			t.Errorf("classify(%q) = %v, want %v", tt.out, got, tt.want)
		}
	}
}
