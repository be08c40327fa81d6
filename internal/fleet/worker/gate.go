package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// Gate holds due units back: a paused database, a rollout wave that is
// not open yet, a site at its limit, a maintenance window that is closed
// (package rollout). The loop asks it before every claim and lets it make
// the claim, so whatever it reserves for a unit (a site's slot) is taken
// together with the unit. Units it holds wait in the scanner under the
// key it gives, and cost nothing until it releases that key.
//
// Note, Dirs, Event, Refresh and Admit are called from the loop's
// goroutine; Moved from the goroutine that handled the unit.
type Gate interface {
	// Note says what the gate needs to know of a unit, once per version
	// of its file; it comes back in the unit's spool.Entry.
	Note(u *unit.Unit) any
	// Dirs are directories whose file events the gate wants (Event).
	Dirs() []string
	// Event tells of a change of file path in one of Dirs; true means
	// a unit held back may be free now (look at Refresh).
	Event(path string) bool
	// Refresh runs before every round of claims; full is set at the
	// safety rescan (look at what events miss: other NFS hosts). It
	// returns the hold keys to release and when it wants to be asked
	// again (zero: no time).
	Refresh(now time.Time, full bool) (release []string, next time.Time, err error)
	// Admit decides about a due unit and, when it may start, makes the
	// claim with claim.
	Admit(e spool.Entry, now time.Time, claim func() (*spool.Claim, error)) Admission
	// Moved tells that a claimed unit went to directory to (its own
	// directory again for a hand-back).
	Moved(c *spool.Claim, to spool.Dir)
}

// Admission is a Gate's answer.
type Admission struct {
	// Hold, when set, keeps the unit back until the gate releases it.
	Hold string
	// Claim and Err are claim's results when the unit was let through;
	// Err is spool.ErrBusy when the gate itself was busy (try again soon).
	Claim *spool.Claim
	Err   error
}

// Observer hears what the loop does, for metrics. Its methods are called
// from the goroutines handling units and must be quick.
type Observer interface {
	// Step tells that a unit spent took in pipeline step name.
	Step(name string, took time.Duration)
	// Moved tells where a unit went after its pipeline, and why.
	Moved(from, to spool.Dir, o Outcome)
}

// stepper records a pipeline's steps: in the unit (unit.FieldStep, so
// --stats and the status page of any host see where each unit is) and in
// the observer's durations.
type stepper struct {
	c    *spool.Claim
	obs  Observer
	name string
	at   time.Time
}

// begin ends the step under way and starts step name.
func (s *stepper) begin(name string, now time.Time) error {
	s.end(now)
	s.name, s.at = name, now
	// Saved on top of the last saved version, so the pipeline's unsaved
	// work is not made durable earlier than it chose.
	u := s.c.Unit.Clone()
	u.Set(unit.FieldStep, name)
	u.Set(unit.FieldStepTS, unit.Epoch(now))
	return s.c.Update(u)
}

// end ends the step under way, if any.
func (s *stepper) end(now time.Time) {
	if s.name != "" && s.obs != nil {
		s.obs.Step(s.name, now.Sub(s.at))
	}
	s.name = ""
}

// errHeld means the gate held the unit back.
var errHeld = errors.New("held back by the gate")

// refreshGate lets the gate look at what changed and releases what it
// lets go; it returns when the gate wants to be asked again.
func (r *run) refreshGate(now time.Time) (time.Time, error) {
	if r.Gate == nil {
		return time.Time{}, nil
	}
	full := r.gateFull
	r.gateFull = false
	release, next, err := r.Gate.Refresh(now, full)
	if err != nil {
		return time.Time{}, fmt.Errorf("rollout: %w", err)
	}
	for _, k := range release {
		r.scanner.Release(k)
	}
	return next, nil
}

// claim claims a due unit, through the gate when there is one.
func (r *run) claim(e spool.Entry, now time.Time) (*spool.Claim, error) {
	claim := func() (*spool.Claim, error) { return r.DB.Claim(r.Input, e.Name, now, r.DueOf) }
	if r.Gate == nil {
		return claim()
	}
	a := r.Gate.Admit(e, now, claim)
	if a.Hold != "" {
		r.scanner.Hold(e.Name, a.Hold)
		return nil, errHeld
	}
	return a.Claim, a.Err
}

// moved tells the gate and the observer where a claimed unit went.
func (r *run) moved(c *spool.Claim, to spool.Dir, o Outcome) {
	if r.Gate != nil {
		r.Gate.Moved(c, to)
	}
	if r.Observer != nil {
		r.Observer.Moved(c.From(), to, o)
	}
}
