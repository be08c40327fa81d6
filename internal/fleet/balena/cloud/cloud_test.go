package cloud

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
)

func TestNew(t *testing.T) {
	s := fakebalena.Start(fakebalena.Config{})
	defer s.Close()
	s.AddUser("gh_ops", "tok")
	dir := t.TempDir()
	bin := filepath.Join(dir, "balena")
	script := "#!/bin/sh\nprintf 'USERNAME: cli_user\\nEMAIL:    c@example.com\\n'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, kind string
		opts       balena.Options
		wantUser   string
		wantErr    error
	}{
		{"default is api", "", balena.Options{APIURL: s.URL(), Token: "tok"}, "gh_ops", nil},
		{"api", "API", balena.Options{APIURL: s.URL(), Token: "tok"}, "gh_ops", nil},
		{"cli", "cli", balena.Options{CLIPath: bin}, "cli_user", nil},
		{"api without token", "api", balena.Options{APIURL: s.URL(), TokenFile: filepath.Join(dir, "none")}, "", balena.ErrNoToken},
		{"unknown", "ssh", balena.Options{}, "", ErrUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.kind, tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || c != nil {
					t.Fatalf("New = %v, %v; want nil, %v", c, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u, err := c.Whoami(context.Background())
			if err != nil || u.Username != tt.wantUser {
				t.Fatalf("Whoami = %+v, %v; want %s", u, err, tt.wantUser)
			}
		})
	}
}
