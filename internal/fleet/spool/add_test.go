package spool

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

func newUnit(t *testing.T, id string) *unit.Unit {
	t.Helper()
	u, err := unit.New(id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A database written before .ids/ existed is indexed on the first add, so
// its units still count as existing.
func TestAddIndexesAnOlderDatabase(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 3)
	// Forget the index, as in a database made by an older version.
	if err := os.RemoveAll(db.Path(IDs)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Add(newUnit(t, "dev-00001")); !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	for _, id := range []string{"dev-00000", "dev-00001", "dev-00002"} {
		if _, err := os.Stat(db.Path(IDs, id)); err != nil {
			t.Errorf("id %s not indexed: %v", id, err)
		}
	}
}

// An id file whose unit is nowhere (removed by hand, or its adder died
// before writing it) does not block adding that id again.
func TestAddTakesOverAStaleID(t *testing.T) {
	db := newDB(t)
	paths := addUnits(t, db, 1)
	if err := os.Remove(paths[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Add(newUnit(t, "dev-00000")); err != nil {
		t.Fatalf("re-adding a removed unit: %v", err)
	}
	if _, err := db.Add(newUnit(t, "dev-00000")); !errors.Is(err, ErrExists) {
		t.Fatalf("third add: err = %v, want ErrExists", err)
	}
}

// A batch with one existing id writes nothing and reserves nothing.
func TestAddManyAllOrNothing(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 1)
	batch := []*unit.Unit{newUnit(t, "new-a"), newUnit(t, "dev-00000"), newUnit(t, "new-b")}
	if _, err := db.AddMany(batch); !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	for _, id := range []string{"new-a", "new-b"} {
		if _, err := os.Stat(db.Path(IDs, id)); !os.IsNotExist(err) {
			t.Errorf("id %s left reserved: %v", id, err)
		}
		if m, _ := filepath.Glob(db.Path(Units, "unit-"+id+"-*")); len(m) != 0 {
			t.Errorf("unit %s written: %v", id, m)
		}
	}
	if _, err := db.AddMany(batch[:1]); err != nil {
		t.Fatal(err)
	}
}
