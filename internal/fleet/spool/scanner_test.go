package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// addDue adds unit id due at t and returns its file name.
func addDue(t *testing.T, db *DB, id string, at time.Time) string {
	t.Helper()
	u := newUnit(t, id)
	u.SetDue(at)
	p, err := db.Add(u)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(p)
}

// replace rewrites unit file name with a new due time, the way every
// rewrite happens: a new file renamed over the old one.
func replace(t *testing.T, db *DB, name string, at time.Time) {
	t.Helper()
	data, _ := os.ReadFile(db.Path(Units, name))
	u, err := unit.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	u.SetDue(at)
	out, _ := u.Marshal()
	tmp := db.Path(Tmp, "x")
	os.WriteFile(tmp, out, 0o600)
	if err := os.Rename(tmp, db.Path(Units, name)); err != nil {
		t.Fatal(err)
	}
}

func names(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func TestScannerDueOrderAndNext(t *testing.T) {
	db := newDB(t)
	now := time.Now()
	b := addDue(t, db, "b", now.Add(-time.Minute))
	a := addDue(t, db, "a", now.Add(-time.Hour))
	c := addDue(t, db, "c", now.Add(time.Hour))
	addDue(t, db, "d", now.Add(2*time.Hour))
	s := db.NewScanner(Units, nil)
	due, next, err := s.Scan(now)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(due); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("due = %v, want [%s %s]", got, a, b)
	}
	if next.Sub(now.Add(time.Hour)).Abs() > time.Second {
		t.Fatalf("next = %v, want about %v", next, now.Add(time.Hour))
	}
	// Time passes: c becomes due without any file changing.
	due, next, _ = s.Refresh(now.Add(90 * time.Minute))
	if got := names(due); len(got) != 3 || got[2] != c {
		t.Fatalf("due later = %v", got)
	}
	if next.Sub(now.Add(2*time.Hour)).Abs() > time.Second {
		t.Fatalf("next later = %v", next)
	}
}

// Refresh looks only at the names it was told about: a change nobody
// reported is seen by the next full Scan, not before. This is what keeps a
// wake-up from touching every file of a large directory.
func TestScannerRefreshLooksOnlyAtReportedNames(t *testing.T) {
	db := newDB(t)
	now := time.Now()
	x := addDue(t, db, "x", now.Add(time.Hour))
	y := addDue(t, db, "y", now.Add(time.Hour))
	s := db.NewScanner(Units, nil)
	if due, _, _ := s.Scan(now); len(due) != 0 {
		t.Fatalf("due = %v", names(due))
	}
	replace(t, db, x, now.Add(-time.Second))
	replace(t, db, y, now.Add(-time.Second))
	s.Changed(y)
	due, _, _ := s.Refresh(now)
	if got := names(due); len(got) != 1 || got[0] != y {
		t.Fatalf("after reporting only %s: due = %v", y, got)
	}
	due, _, _ = s.Scan(now)
	if got := names(due); len(got) != 2 {
		t.Fatalf("full scan: due = %v, want both", got)
	}
	// A reported file that is gone leaves the scanner; a new one enters.
	os.Rename(db.Path(Units, y), db.Path(Process, y))
	z := addDue(t, db, "z", now.Add(-time.Hour))
	s.Changed(y)
	s.Changed(z)
	due, _, _ = s.Refresh(now)
	if got := names(due); len(got) != 2 || got[0] != z || got[1] != x {
		t.Fatalf("after moves: due = %v, want [%s %s]", got, z, x)
	}
	// A due unit pushed into the future leaves the due list.
	replace(t, db, z, now.Add(time.Hour))
	s.Changed(z)
	due, next, _ := s.Refresh(now)
	if got := names(due); len(got) != 1 || got[0] != x || next.Sub(now.Add(time.Hour)).Abs() > time.Second {
		t.Fatalf("after re-due: due = %v next = %v", got, next)
	}
}

// Rewriting one file many times does not grow the scanner without bound.
func TestScannerHeapStaysBounded(t *testing.T) {
	db := newDB(t)
	now := time.Now()
	x := addDue(t, db, "x", now.Add(time.Hour))
	s := db.NewScanner(Units, nil)
	s.Scan(now)
	for i := 0; i < 3000; i++ {
		replace(t, db, x, now.Add(time.Hour+time.Duration(i)*time.Second))
		s.Changed(x)
		s.Refresh(now)
	}
	if len(s.later) > 2*len(s.files)+1024+1 {
		t.Fatalf("heap holds %d entries for %d files", len(s.later), len(s.files))
	}
}

// writeWaiting writes n units due in a day straight into units/ (no
// fsync, no id index: set-up only) and returns their file names.
func writeWaiting(t *testing.T, db *DB, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		u := newUnit(t, fmt.Sprintf("w%06d", i))
		u.SetDue(time.Now().Add(24 * time.Hour))
		data, err := u.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		name := FileName(Units, u.ID(), "t")
		if err := os.WriteFile(db.Path(Units, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	return out
}

// A listing in steps gives way between steps, and what the caller learns
// in between (Refresh) survives the end of the listing: a unit that
// arrived mid-listing is not dropped as gone, one that left is.
func TestScannerListsInSteps(t *testing.T) {
	db := newDB(t)
	now := time.Now()
	waiting := writeWaiting(t, db, 400)
	s := db.NewScanner(Units, nil)
	if err := s.StartListing(); err != nil {
		t.Fatal(err)
	}
	// A zero budget still makes progress: a few dozen entries per step.
	done, err := s.Step(now, 0)
	if err != nil || done || !s.Listing() {
		t.Fatalf("first step: done=%v err=%v, want a listing still under way", done, err)
	}
	// Mid-listing: one unit arrives due, one leaves.
	z := addDue(t, db, "zz-new", now.Add(-time.Minute))
	gone := waiting[len(waiting)-1]
	os.Remove(db.Path(Units, gone))
	s.Changed(z)
	s.Changed(gone)
	due, _, err := s.Refresh(now)
	if got := names(due); err != nil || len(got) != 1 || got[0] != z {
		t.Fatalf("mid-listing refresh: due = %v err = %v, want [%s]", got, err, z)
	}
	steps := 1
	for !done {
		if done, err = s.Step(now, 0); err != nil {
			t.Fatal(err)
		}
		steps++
	}
	if steps < 5 || s.Listing() {
		t.Fatalf("listing of 400 files took %d zero-budget steps (listing=%v); want several", steps, s.Listing())
	}
	due, next, _ := s.Refresh(now)
	if got := names(due); len(got) != 1 || got[0] != z {
		t.Fatalf("after the listing: due = %v, want [%s]", got, z)
	}
	if next.IsZero() {
		t.Fatal("after the listing: no next due time for 399 waiting units")
	}
	if _, ok := s.files[gone]; ok || len(s.files) != len(waiting) {
		t.Fatalf("after the listing the scanner knows %d files (gone one known: %v), want %d", len(s.files), ok, len(waiting))
	}
}
