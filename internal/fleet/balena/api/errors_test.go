package api

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
)

func TestTokenRejected(t *testing.T) {
	s := fakebalena.Start(fakebalena.Config{})
	defer s.Close()
	s.AddUser("gh_ops", token)
	s.AddApp("ops/fleet-one", "raspberrypi3")
	const wrong = "wrong-token-xyz"
	c, err := New(balena.Options{APIURL: s.URL(), Token: wrong, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"whoami":    func() error { _, err := c.Whoami(ctx); return err },
		"register":  func() error { _, err := c.Register(ctx, reg("ops/fleet-one", balena.NewUUID())); return err },
		"is online": func() error { _, err := c.IsOnline(ctx, balena.NewUUID()); return err },
		"config": func() error {
			_, err := c.DeviceConfig(ctx, balena.Device{ID: 1, Fleet: "ops/fleet-one", UUID: balena.NewUUID()}, "2.26.0")
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, balena.ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
			if msg := err.Error(); strings.Contains(msg, wrong) || !strings.Contains(msg, "token was rejected") {
				t.Fatalf("message %q leaks the token or gives no advice", msg)
			}
		})
	}
	// config's fleet lookup finds nothing with a rejected token (balena
	// shows public fleets to anyone) and asks whoami why.
	if n := s.Calls(fakebalena.RouteWhoami); n != 3 {
		t.Errorf("whoami called %d times; a 401 must not be retried (want 3: whoami, register, config)", n)
	}
}

func TestTransientFailures(t *testing.T) {
	tests := []struct {
		name      string
		script    []int
		retry     balena.RetryPolicy
		wantErr   error
		wantCalls int
		minTook   time.Duration
		maxTook   time.Duration
	}{
		{"503 storm shorter than the retries", []int{503, 503}, fastRetry, nil, 3, 0, time.Second},
		{"503 storm outlasting the retries", []int{503, 502, 500, 503}, fastRetry, balena.ErrTransient, 3, 0, time.Second},
		{"429 Retry-After honoured", []int{429}, balena.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 3 * time.Second},
			nil, 2, 900 * time.Millisecond, 2 * time.Second},
		{"429 Retry-After in full beyond Max", []int{429}, balena.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 20 * time.Millisecond},
			nil, 2, 900 * time.Millisecond, 2 * time.Second},
		{"429 Retry-After beyond the ceiling ends the call", []int{429}, balena.RetryPolicy{Attempts: 3, Base: time.Millisecond,
			Max: time.Millisecond, MaxRetryAfter: 500 * time.Millisecond}, balena.ErrTransient, 1, 0, 300 * time.Millisecond},
		{"400 is not retried", []int{400}, fastRetry, balena.ErrInvalid, 1, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakebalena.Config{}, tt.retry)
			e.srv.FailNext(tt.script...)
			start := time.Now()
			_, err := e.c.Whoami(context.Background())
			took := time.Since(start)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n := e.srv.Calls(fakebalena.RouteWhoami); n != tt.wantCalls {
				t.Errorf("%d calls, want %d", n, tt.wantCalls)
			}
			if took < tt.minTook || took > tt.maxTook {
				t.Errorf("took %v, want between %v and %v", took, tt.minTook, tt.maxTook)
			}
		})
	}
}

func TestFaultRateStillRegistersOnce(t *testing.T) {
	e := newEnv(t, fakebalena.Config{FaultRate: 0.3}, balena.RetryPolicy{Attempts: 30, Base: time.Millisecond, Max: 2 * time.Millisecond})
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		uuid := balena.NewUUID()
		var d balena.Device
		for try := 0; try < 2; try++ {
			var err error
			if d, err = e.c.Register(ctx, reg("ops/fleet-one", uuid)); err != nil {
				t.Fatalf("register %d/%d: %v", i, try, err)
			}
		}
		if _, err := e.c.DeviceConfig(ctx, d, "2.26.0"); err != nil {
			t.Fatalf("config %d: %v", i, err)
		}
	}
	if n := len(e.srv.Devices()); n != 10 {
		t.Fatalf("%d devices, want 10", n)
	}
	if e.srv.Faults() == 0 {
		t.Fatal("no faults were injected; the test proves nothing")
	}
}

func TestNetworkErrorIsTransient(t *testing.T) {
	s := fakebalena.Start(fakebalena.Config{})
	url := s.URL()
	s.Close()
	c, err := New(balena.Options{APIURL: url, Token: token, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Whoami(context.Background()); !errors.Is(err, balena.ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
}

func TestContextEndsRetries(t *testing.T) {
	e := newEnv(t, fakebalena.Config{FaultRate: 1}, balena.RetryPolicy{Attempts: 100, Base: 20 * time.Millisecond, Max: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.c.Whoami(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %v, want DeadlineExceeded soon", err, time.Since(start))
	}
}

func TestNewOptions(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		opts      balena.Options
		wantToken string
		wantErr   error
		errHas    string
	}{
		{"token given", balena.Options{Token: "abc", TokenFile: good}, "abc", nil, ""},
		{"token file", balena.Options{TokenFile: good}, "file-token", nil, ""},
		{"missing file", balena.Options{TokenFile: filepath.Join(dir, "nope")}, "", balena.ErrNoToken, filepath.Join(dir, "nope")},
		{"empty file", balena.Options{TokenFile: empty}, "", balena.ErrNoToken, empty},
		{"bad URL", balena.Options{APIURL: "ftp://x", Token: "abc"}, "", nil, "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if tt.errHas != "" || tt.wantErr != nil {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want %v naming %q", err, tt.wantErr, tt.errHas)
				}
				return
			}
			if err != nil || c.token != tt.wantToken || c.base != balena.DefaultAPIURL {
				t.Fatalf("client %v token %q base %q, err %v", c, c.token, c.base, err)
			}
		})
	}
}
