package spool

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

var errInjected = errors.New("injected fsync failure")

// failSync makes every directory fsync of db fail until the returned
// function is called.
func failSync(db *DB) func() {
	db.dirSync = func(string) error { return errInjected }
	return func() { db.dirSync = nil }
}

// locked reports whether some open file holds the lock on path.
func locked(t *testing.T, path string) bool {
	t.Helper()
	f, err := lockFile(path)
	if errors.Is(err, ErrBusy) {
		return true
	}
	if err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	f.Close()
	return false
}

// A directory fsync that fails after a rename must leave ownership right:
// a file under a claim name in tmp/ is locked by its live owner, and a file
// anywhere else is locked by nobody.
func TestDirSyncFailureKeepsOwnership(t *testing.T) {
	for _, tc := range []struct {
		name string
		// op runs with every directory fsync failing; it gets a fresh
		// claim when claimed is set, else nil.
		claimed bool
		op      func(db *DB, name string, c *Claim) error
		// in is where the unit must be afterwards; owned says the
		// claim must still be alive.
		in    Dir
		owned bool
	}{
		{"claim is undone", false, func(db *DB, name string, _ *Claim) error {
			_, err := db.Claim(Units, name, time.Now(), nil)
			return err
		}, Units, false},
		{"update keeps the claim on the new file", true, func(db *DB, _ string, c *Claim) error {
			u := c.Unit.Clone()
			u.Set(unit.FieldDeviceID, "feed")
			return c.Update(u)
		}, Tmp, true},
		{"finish ends the claim", true, func(db *DB, _ string, c *Claim) error {
			_, err := c.Finish(Process, c.Unit)
			return err
		}, Process, false},
		{"finish raw ends the claim", true, func(db *DB, _ string, c *Claim) error {
			_, err := c.FinishRaw(Fail)
			return err
		}, Fail, false},
		{"release ends the claim", true, func(db *DB, _ string, c *Claim) error {
			return c.Release()
		}, Units, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			addUnits(t, db, 1)
			names, _ := readNames(db.Path(Units))
			var c *Claim
			if tc.claimed {
				var err error
				if c, err = db.Claim(Units, names[0], time.Now(), nil); err != nil {
					t.Fatal(err)
				}
			}
			heal := failSync(db)
			err := tc.op(db, names[0], c)
			heal()
			if !errors.Is(err, errInjected) {
				t.Fatalf("err = %v, want the injected fault reported", err)
			}
			ds := where(t, db)["dev-00000"]
			if len(ds) != 1 || ds[0] != tc.in {
				t.Fatalf("unit is in %v, want %s", ds, tc.in)
			}
			var p string
			if tc.in == Tmp {
				p = c.Path()
			} else {
				matches, _ := filepath.Glob(db.Path(tc.in, "*-dev-00000-*"))
				if len(matches) != 1 {
					t.Fatalf("files in %s: %v", tc.in, matches)
				}
				p = matches[0]
			}
			if got := locked(t, p); got != tc.owned {
				t.Fatalf("%s locked = %v, want %v (an unlocked claim or a leaked lock)", p, got, tc.owned)
			}
			if c != nil && c.Ended() == tc.owned {
				t.Fatalf("claim ended = %v, want %v", c.Ended(), !tc.owned)
			}
			if back, _ := db.RecoverOrphans(); len(back) != 0 {
				t.Fatalf("orphan recovery took %v", back)
			}
			if tc.owned {
				data, _ := os.ReadFile(p)
				if u, err := unit.Parse(data); err != nil || u.Get(unit.FieldDeviceID) != "feed" {
					t.Fatalf("claim file does not hold the update:\n%s", data)
				}
				if err := c.Release(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// An add whose directory fsync fails reports it, and the unit it wrote is
// not left locked.
func TestDirSyncFailureOnAdd(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 1) // the id index exists now
	u, _ := unit.New("late", time.Now())
	heal := failSync(db)
	_, err := db.Add(u)
	heal()
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	if _, err := db.Add(u); err != nil && !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v", err)
	}
	matches, _ := filepath.Glob(db.Path(Units, "unit-late-*"))
	if len(matches) > 1 {
		t.Fatalf("unit written twice: %v", matches)
	}
	for _, p := range matches {
		if locked(t, p) {
			t.Fatalf("%s left locked", p)
		}
	}
}
