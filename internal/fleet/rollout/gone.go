package rollout

import (
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
)

// gone finds units that are in no directory of the database: deleted by
// hand, or an id whose adder died before writing its unit. A wave must not
// wait for them, nor a group count them. Looking for a unit by name can
// miss one being renamed, so an id counts as gone only when two whole
// listings of the database, at least goneEvery apart, did not show it; the
// listings run at safety rescans, and only while an id is suspected (a
// wave waiting for a unit in flight suspects it too, so they are rare: a
// listing of 100,000 units costs tens of milliseconds).
type gone struct {
	db       *spool.DB
	every    time.Duration
	last     time.Time
	suspects map[string]bool
	misses   map[string]int // whole listings in a row without the id
}

// goneEvery is the least time between two whole listings.
const goneEvery = 10 * time.Minute

func newGone(db *spool.DB, every time.Duration) *gone {
	return &gone{db: db, every: every, suspects: map[string]bool{}, misses: map[string]int{}}
}

// check reports whether id is known to be gone, and suspects it otherwise.
func (g *gone) check(id string) bool {
	if g.misses[id] >= 2 {
		return true
	}
	g.suspects[id] = true
	return false
}

// run lists the database when ids are suspected and the last listing is
// a rescan ago.
func (g *gone) run(now time.Time) error {
	if len(g.suspects) == 0 || now.Sub(g.last) < g.every {
		return nil
	}
	idx, err := g.db.Index()
	if err != nil {
		return err
	}
	g.last = now
	for id := range g.suspects {
		if len(idx[id]) == 0 {
			g.misses[id]++
		} else {
			delete(g.misses, id)
			delete(g.suspects, id)
		}
	}
	for id := range g.misses {
		if !g.suspects[id] {
			delete(g.misses, id)
		}
	}
	return nil
}

// forget stops watching ids no longer asked about.
func (g *gone) forget(id string) {
	delete(g.suspects, id)
	delete(g.misses, id)
}
