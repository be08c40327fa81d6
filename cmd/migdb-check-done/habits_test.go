package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// --stats and the worker never make a database: a --base without db/
// exits 2 naming the path, and a --base that is db/ itself is refused.
func TestWrongBaseExits2AndMakesNothing(t *testing.T) {
	_, base, _ := setup(t)
	empty := t.TempDir()
	dbDir := filepath.Join(base, "db")
	for _, tc := range []struct {
		name, base, want string
		extra            []string
	}{
		{"--stats, no db/", empty, filepath.Join(empty, "db") + " does not exist", []string{"--stats"}},
		{"--once, no db/", empty, filepath.Join(empty, "db") + " does not exist", []string{"--once"}},
		{"--stats, the db/ directory", dbDir, "give --base / MIG_DB_DIR its parent, " + base, []string{"--stats"}},
	} {
		out, err := cmd(tc.base, tc.extra...).CombinedOutput()
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

// --once exits 1 when a unit it handled went to fail/, naming how many, and
// 0 when none did.
func TestOnceExits1WhenUnitsFailed(t *testing.T) {
	srv, base, db := setup(t)
	args := []string{"--balena-api", srv.URL(), "--balena-token", "tok", "--once", "--check-interval", "5"}
	if out, err := cmd(base, args...).CombinedOutput(); err != nil {
		t.Fatalf("no unit failed: %v\n%s", err, out)
	}
	// A unit in process/ that was never migrated fails as config_error.
	u, _ := unit.New("c", time.Now())
	p, _ := db.Add(u)
	os.Rename(p, db.Path(spool.Process, filepath.Base(p)))
	out, err := cmd(base, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "1 of the 1 units handled went to "+db.Path(spool.Fail)) {
		t.Fatalf("a unit failed: %v, want exit 1 saying so:\n%s", err, out)
	}
}

// --stats -o - writes the CSV alone to stdout (the summary to stderr) and
// makes no file called "-".
func TestStatsCSVToStdout(t *testing.T) {
	_, base, _ := setup(t)
	c := cmd(base, "--stats", "-o", "-")
	c.Dir = base
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "id,state,fail_class,") || !strings.Contains(stderr.String(), "total    2") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(base, "-")); err == nil {
		t.Error(`a file called "-" was written`)
	}
}

// An error that stops a worker logging to a file is in that file too, not
// only on stderr.
func TestFatalErrorReachesTheLogFile(t *testing.T) {
	srv, base, _ := setup(t)
	logFile := filepath.Join(base, "worker.log")
	out, err := cmd(base, "--balena-api", srv.URL(), "--balena-token", "wrong-secret", "--once", "--log-to", logFile).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("%v\n%s", err, out)
	}
	data, _ := os.ReadFile(logFile)
	if !strings.Contains(string(data), "ERROR]: stopped: balena at "+srv.URL()+" rejected the token") || strings.Contains(string(data), "wrong-secret") {
		t.Errorf("the log file does not say why the worker stopped:\n%s", data)
	}
}
