package stats

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
)

// TestExampleDB checks the shipped example: every unit parses, bash can
// source it, and the summary counts one unit per state.
func TestExampleDB(t *testing.T) {
	base := "../../db-example"
	files, _ := filepath.Glob(filepath.Join(base, "db", "*", "*-gw-*"))
	if len(files) < 5 {
		t.Fatalf("example db has %v", files)
	}
	for _, f := range files {
		if strings.Contains(f, "/log/") {
			continue
		}
		data, _ := os.ReadFile(f)
		u, err := unit.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out, err := exec.Command("bash", "-c", `set -eu; source "$1"; printf %s "$UNIT_ID"`, "bash", f).Output()
		if err != nil || string(out) != u.ID() {
			t.Fatalf("%s: bash read %q (%v)", f, out, err)
		}
	}
	db, err := spool.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Collect(db)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteSummary(&b, rows)
	for _, want := range []string{"units    1", "process  1", "done     1", "fail     1", "refused     1", "preflight ok  1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	var c bytes.Buffer
	WriteCSV(&c, rows)
	if !strings.Contains(c.String(), "gw-0002,process,,,2025-11-24T16:00:00Z,2025-11-24T16:07:00Z,420,4f1c2b7e9a0d4e6f8b3c5a7d9e1f2a3b,") {
		t.Errorf("csv:\n%s", c.String())
	}
}
