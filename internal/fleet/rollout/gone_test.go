package rollout

import (
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// A unit is gone only after two whole listings, the interval apart, did
// not find it; one that shows up again is not.
func TestGoneNeedsTwoListingsApart(t *testing.T) {
	db, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := unit.New("here", time.Now())
	if _, err := db.Add(u); err != nil {
		t.Fatal(err)
	}
	g := newGone(db, 10*time.Minute)
	now := time.Now()
	for _, id := range []string{"here", "ghost", "late"} {
		if g.check(id) {
			t.Fatalf("%s gone before any listing", id)
		}
	}
	for _, step := range []struct {
		at   time.Duration
		gone map[string]bool
	}{
		{0, map[string]bool{"ghost": false}},
		{5 * time.Minute, map[string]bool{"ghost": false}}, // too soon: no listing
		{10 * time.Minute, map[string]bool{"ghost": true, "here": false, "late": false}},
	} {
		if step.at == 5*time.Minute {
			l, _ := unit.New("late", time.Now())
			db.Add(l) // appears between the listings
		}
		if err := g.run(now.Add(step.at)); err != nil {
			t.Fatal(err)
		}
		for id, want := range step.gone {
			if got := g.check(id); got != want {
				t.Errorf("after %v: %s gone %v", step.at, id, got)
			}
		}
	}
}
