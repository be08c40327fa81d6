package balena

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUUID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		u := NewUUID()
		if !ValidUUID(u) || seen[u] {
			t.Fatalf("NewUUID gave %q (valid %v, repeated %v)", u, ValidUUID(u), seen[u])
		}
		seen[u] = true
	}
	tests := []struct {
		in   string
		want bool
	}{
		{strings.Repeat("a1", 16), true},
		{strings.Repeat("A1", 16), false},
		{strings.Repeat("a1", 16) + "0", false},
		{strings.Repeat("a1", 15), false},
		{strings.Repeat("g1", 16), false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidUUID(tt.in); got != tt.want {
			t.Errorf("ValidUUID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestClassOfStatus(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{
		{200, nil}, {201, nil}, {400, ErrInvalid}, {401, ErrUnauthorized}, {403, ErrInvalid},
		{404, ErrNotFound}, {408, ErrTransient}, {409, ErrConflict}, {429, ErrTransient},
		{500, ErrTransient}, {502, ErrTransient}, {503, ErrTransient},
	}
	for _, tt := range tests {
		if got := ClassOfStatus(tt.status); got != tt.want {
			t.Errorf("ClassOfStatus(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestErrorUnwrapsClassAndCause(t *testing.T) {
	e := &Error{Op: "register device", Status: 503, Class: ErrTransient, Msg: "busy", Err: context.DeadlineExceeded}
	if !errors.Is(e, ErrTransient) || !errors.Is(e, context.DeadlineExceeded) || errors.Is(e, ErrNotFound) {
		t.Fatalf("unwrap wrong for %v", e)
	}
	want := "balena: register device: balena temporarily unavailable (HTTP 503): busy: context deadline exceeded"
	if e.Error() != want {
		t.Fatalf("Error() = %q, want %q", e.Error(), want)
	}
}

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{Attempts: 5, Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		next       int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{1, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 0, 200 * time.Millisecond, 400 * time.Millisecond},
		{10, 0, 500 * time.Millisecond, time.Second},
		{1, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond},
		{1, time.Hour, time.Hour, time.Hour}, // in full, beyond Max
		{10, 300 * time.Millisecond, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for i := 0; i < 50; i++ {
			if d := p.Delay(tt.next, tt.retryAfter); d < tt.lo || d > tt.hi {
				t.Fatalf("Delay(%d, %v) = %v, want in [%v, %v]", tt.next, tt.retryAfter, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestRetryDo(t *testing.T) {
	p := RetryPolicy{Attempts: 4, Base: time.Millisecond, Max: 2 * time.Millisecond}
	transient := &Error{Op: "x", Class: ErrTransient}
	boom := errors.New("boom")
	tests := []struct {
		name      string
		errs      []error // returned by successive calls; nil after the end
		wantCalls int
		wantErr   error
	}{
		{"success at once", nil, 1, nil},
		{"two transient then success", []error{transient, transient}, 3, nil},
		{"transient throughout", []error{transient, transient, transient, transient, transient}, 4, ErrTransient},
		{"permanent is not retried", []error{&Error{Op: "x", Class: ErrUnauthorized}}, 1, ErrUnauthorized},
		{"plain error is not retried", []error{boom}, 1, boom},
		{"Retry-After beyond the ceiling ends the call", []error{&Error{Op: "x", Class: ErrTransient,
			RetryAfter: time.Hour}}, 1, ErrTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := p.Do(context.Background(), func(context.Context) error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls, tt.wantCalls)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
		})
	}
}

func TestResolveTokenDefaultFile(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	_, err := ResolveToken(Options{})
	want := filepath.Join(home, ".balena", "token")
	if !errors.Is(err, ErrNoToken) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want ErrNoToken naming %s", err, want)
	}
	if err := os.MkdirAll(filepath.Dir(want), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := ResolveToken(Options{}); tok != "tok" || err != nil {
		t.Fatalf("ResolveToken = %q, %v", tok, err)
	}
}
