package stats

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// TestExampleDB checks the shipped example: every unit parses, bash can
// source it, and the summary counts one unit per state.
func TestExampleDB(t *testing.T) {
	base := "../../../db-example"
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
	for _, want := range []string{"units    1", "process  1", "done     1", "fail     1", "refused     1", "preflight ok  1", "heartbeat  1"} {
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

// fill writes n units in varied states straight into the database.
func fill(t testing.TB, db *spool.DB, n int) {
	t.Helper()
	dirs := []spool.Dir{spool.Units, spool.Process, spool.Done, spool.Fail}
	for i := 0; i < n; i++ {
		u, err := unit.New(fmt.Sprintf("u%06d", i), time.Now().Add(-time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		d := dirs[i%len(dirs)]
		if d == spool.Fail {
			u.Set(unit.FieldFailClass, "ssh")
		}
		data, _ := u.Marshal()
		if err := os.WriteFile(db.Path(d, spool.FileName(d, u.ID(), "t")), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Reading with several goroutines gives exactly the rows of one reader.
func TestCollectInParallelMatchesOneReader(t *testing.T) {
	db, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db, 500)
	one, err := collect(db, 1)
	if err != nil {
		t.Fatal(err)
	}
	many, err := collect(db, readers)
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 500 || !reflect.DeepEqual(one, many) {
		t.Fatalf("one reader: %d rows, %d readers: %d rows; equal: %v", len(one), readers, len(many), reflect.DeepEqual(one, many))
	}
	if one[3].State != "fail" || one[3].FailClass != "ssh" {
		t.Fatalf("row 3: %+v", one[3])
	}
}

// BenchmarkCollect reads a database of 20,000 units with this package's
// readers and with the obvious alternative, one file at a time.
//
//	go test -run '^$' -bench Collect ./internal/stats
func BenchmarkCollect(b *testing.B) {
	db, err := spool.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	fill(b, db, 20000)
	for _, n := range []int{1, readers} {
		b.Run(fmt.Sprintf("readers=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := collect(db, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
