package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// TestRecordIsChangedUnderOneLock: a second locker waits while the first
// holds the record, and then sees the version the first wrote, though that
// version is a new file (the locker must notice it locked the old one).
func TestRecordIsChangedUnderOneLock(t *testing.T) {
	db := newDB(t)
	p := db.Path("", "REC")
	r1, err := db.LockRecord(context.Background(), p)
	if err != nil || len(r1.Data) != 0 {
		t.Fatalf("new record: %v %q", err, r1.Data)
	}
	if _, err := db.TryLockRecord(p); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock while held: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		r2, err := db.LockRecord(context.Background(), p)
		if err != nil {
			got <- err.Error()
			return
		}
		defer r2.Close()
		got <- string(r2.Data)
	}()
	time.Sleep(50 * time.Millisecond)
	if err := r1.Replace([]byte("v2\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := r1.Replace([]byte("v3\n")); err != nil {
		t.Fatal(err)
	}
	r1.Close()
	select {
	case s := <-got:
		if s != "v3\n" {
			t.Fatalf("the waiting locker read %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting locker never got the record")
	}
	if data, _ := os.ReadFile(p); string(data) != "v3\n" {
		t.Errorf("record holds %q", data)
	}
	if left, _ := readNames(db.Path(Tmp)); len(left) != 0 {
		t.Errorf("tmp/ holds %v", left)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r3, _ := db.LockRecord(context.Background(), p)
	cancel()
	if _, err := db.LockRecord(ctx, p); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait: %v", err)
	}
	r3.Close()
}

func TestOrderFollowsSubmission(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 3) // dev-00000..dev-00002
	var us []*unit.Unit
	for _, id := range []string{"b", "a"} {
		u, _ := unit.New(id, time.Now())
		us = append(us, u)
	}
	if _, err := db.AddMany(us); err != nil {
		t.Fatal(err)
	}
	o, err := db.ReadOrder(nil)
	if err != nil || o.Len() != 5 {
		t.Fatalf("order: %v %d", err, o.Len())
	}
	for want, id := range []string{"dev-00000", "dev-00001", "dev-00002", "b", "a"} {
		if r, ok := o.Rank(id); !ok || r != want || o.ID(r) != id {
			t.Errorf("%s: rank %d %v", id, r, ok)
		}
	}
	// A line cut short by a crash is ignored, then dropped by the next
	// append; ids already in the order are not added twice.
	f, _ := os.OpenFile(db.OrderPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("half-writ")
	f.Close()
	o, _ = db.ReadOrder(o)
	if o.Len() != 5 {
		t.Fatalf("a partial line was read: %d", o.Len())
	}
	if err := db.EnsureOrdered([]string{"a", "c"}); err != nil {
		t.Fatal(err)
	}
	o, _ = db.ReadOrder(o)
	if r, _ := o.Rank("c"); o.Len() != 6 || r != 5 {
		t.Errorf("after EnsureOrdered: len %d, c at %d", o.Len(), r)
	}
	if data, _ := os.ReadFile(db.OrderPath()); strings.Contains(string(data), "half") {
		t.Errorf("partial line kept: %q", data)
	}
}

// A database written before the order existed gets one, oldest first,
// the first time it is needed.
func TestOrderOfAnOlderDatabase(t *testing.T) {
	db := newDB(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"z", "y", "x"} {
		u, _ := unit.New(id, base.Add(time.Duration(i)*time.Hour))
		data, _ := u.Marshal()
		os.WriteFile(db.Path(Process, FileName(Process, id, fmt.Sprintf("t%d", i))), data, 0o600)
	}
	if err := db.EnsureOrdered(nil); err != nil {
		t.Fatal(err)
	}
	o, _ := db.ReadOrder(nil)
	for want, id := range []string{"z", "y", "x"} {
		if r, _ := o.Rank(id); r != want {
			t.Errorf("%s at %d, want %d", id, r, want)
		}
	}
}

func TestScannerHoldsAndReleases(t *testing.T) {
	db := newDB(t)
	addUnits(t, db, 4)
	s := db.NewScanner(Units, nil)
	s.SetNote(func(u *unit.Unit) any { return "note " + u.ID() })
	due, _, err := s.Scan(time.Now())
	if err != nil || len(due) != 4 || due[0].Note != "note "+mustID(due[0].Name) {
		t.Fatalf("scan: %v %+v", err, due)
	}
	s.Hold(due[0].Name, "k1")
	s.Hold(due[1].Name, "k1")
	s.Hold(due[2].Name, "k2")
	if d, _, _ := s.Refresh(time.Now()); len(d) != 1 || s.Held() != 3 {
		t.Fatalf("after holding 3: %d due, %d held", len(d), s.Held())
	}
	s.Release("k1")
	if d, _, _ := s.Refresh(time.Now()); len(d) != 3 {
		t.Fatalf("after releasing k1: %d due", len(d))
	}
	// A held file that changes is judged afresh.
	s.Changed(due[2].Name)
	if d, _, _ := s.Refresh(time.Now()); len(d) != 4 || s.Held() != 0 || len(s.HeldKeys()) != 0 {
		t.Fatalf("after a change: %d due, %d held %v", len(d), s.Held(), s.HeldKeys())
	}
}

func mustID(name string) string {
	id, _, _ := ParseName(name)
	return id
}
