package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
)

// A worker given a --base without a database, or the db/ directory itself,
// exits 2 naming the path and makes nothing.
func TestWrongBaseExits2AndMakesNothing(t *testing.T) {
	empty := t.TempDir()
	parent := t.TempDir()
	if _, err := spool.Open(parent); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(parent, "db")
	for _, tc := range []struct {
		name, base, want string
		extra            []string
	}{
		{"no db/", empty, filepath.Join(empty, "db") + " does not exist", []string{"--once"}},
		{"no db/, --stop", empty, filepath.Join(empty, "db") + " does not exist", []string{"--stop"}},
		{"the db/ directory", dbDir, "give --base / MIG_DB_DIR its parent, " + parent, []string{"--once"}},
	} {
		c := exec.Command(bin, append([]string{"--base", tc.base, "--color", "OFF"}, tc.extra...)...)
		c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + empty}
		out, err := c.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %v, want exit 2 saying %q:\n%s", tc.name, err, tc.want, out)
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("%s holds %v after the refusals", empty, entries)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "db")); err == nil {
		t.Errorf("a database was made inside %s", dbDir)
	}
}
