// Package worker is the loop both migdb workers share: find due units in an
// input directory, claim them, hand each to a pipeline, and sleep until
// something can have changed.
//
// It wakes on fsnotify events for the input directory and tmp/ (new units,
// the stop file), on a timer for the earliest future due time it saw, and
// on a slow safety rescan (inotify can overflow and does not see writers on
// other NFS clients). The rescan also hands back claims of dead workers.
// Between rescans only the files named by events are looked at, so a
// wake-up costs the same however many units wait; the rescan itself runs in
// short steps between claims.
package worker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/logging"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Handler runs a pipeline over one claimed unit and says where it goes
// next. It gets a copy of the unit and may record it mid-way with j.Save
// (e.g. a device UUID before registering it); it cannot move the file:
// the loop alone does, from the Outcome. ctx is cancelled when the worker
// must abandon the work in hand; the handler then returns a hand-back.
type Handler func(ctx context.Context, j *Job) Outcome

// Job is one claimed unit as a handler sees it.
type Job struct {
	// Unit is the handler's own copy; Save records it in the claim.
	Unit *unit.Unit
	// Name is the unit file's name, for messages.
	Name string
	// Log is the unit's own log in db/log (UNIT_OUTPUT_LOG).
	Log *logging.UnitLog
	// Save records u as the unit's content without moving it.
	Save func(u *unit.Unit) error
	// step records the step the pipeline begins (Step).
	step func(name string) error
}

// Step tells that the pipeline begins step name: it is written into the
// unit (STEP, STEP_TS) and timed for the metrics.
func (j *Job) Step(name string) {
	if j.step == nil {
		return
	}
	j.Unit.Set(unit.FieldStep, name)
	j.Unit.Set(unit.FieldStepTS, unit.Epoch(time.Now()))
	if err := j.step(name); err != nil && j.Log != nil {
		j.Log.Log.Warn().Err(err).Str("step", name).Msg("could not record the step in the unit")
	}
}

// Outcome is where a unit goes after a pipeline.
type Outcome struct {
	// To is the next directory; "" hands the unit back unchanged (as last
	// saved) to where it came from.
	To spool.Dir
	// Unit is the content to write (nil with To == "").
	Unit *unit.Unit
	// Msg explains the outcome for the worker log.
	Msg string
	// Warn logs the outcome as a warning: it went through, but the
	// operator should know something (a device online without its VPN).
	Warn bool
	// Stop, when set, hands the unit back and stops the worker with this
	// error: trouble no unit can get past (a revoked balena token, a full
	// database disk) must not be met by every unit in turn.
	Stop error
	// Class is the class of the trouble that decided the outcome, for a
	// failure and for a unit put back to be tried again ("" otherwise).
	Class devproto.Class
}

// Event starts a log line for the outcome: ERROR for a failure, WARN when
// Warn, else INFO.
func (o Outcome) Event(l *zerolog.Logger) *zerolog.Event {
	switch {
	case o.To == spool.Fail:
		return l.Error()
	case o.Warn:
		return l.Warn()
	}
	return l.Info()
}

// HandBack returns the unit, as last saved, to where it came from.
func HandBack(msg string) Outcome { return Outcome{Msg: msg} }

// Fail ends u in fail/ with class and msg (FAIL_CLASS, FAIL_MSG, FAIL_TS
// at now).
func Fail(u *unit.Unit, class devproto.Class, msg string, now time.Time) Outcome {
	u.SetFail(class, msg, now)
	return Outcome{To: spool.Fail, Unit: u, Class: class, Msg: fmt.Sprintf("failed (%s): %s", class, msg)}
}

// Loop runs a worker over one input directory.
type Loop struct {
	DB     *spool.DB
	Input  spool.Dir
	Name   string // program name, for the worker registration
	Jobs   int    // units in hand at once (≥ 1)
	Once   bool   // handle what is due now, then return
	DueOf  func(*unit.Unit) time.Time
	Rescan time.Duration // safety rescan; default 30 s
	Log    zerolog.Logger
	Handle Handler
	// Reg is the worker's registration, taken by the program as early as
	// possible so `--stop` sees a worker that is still starting; nil makes
	// Run register itself.
	Reg *spool.Registration
	// Gate, when set, decides which due units may start (see Gate).
	Gate Gate
	// Observer, when set, hears of steps and moves (metrics).
	Observer Observer
	// Now is the clock due times and the gate are judged by (time.Now
	// when nil; tests give a fake one).
	Now func() time.Time

	handled, failed int // counted by Run, for Ended
}

// Run works until the stop file appears, graceful is cancelled, or (with
// Once) nothing is due. Units in hand are finished under hard; cancelling
// hard makes handlers hand them back.
func (l *Loop) Run(graceful, hard context.Context) error {
	if l.Jobs < 1 {
		l.Jobs = 1
	}
	if l.Rescan <= 0 {
		l.Rescan = 30 * time.Second
	}
	if l.DB.StopRequested() {
		l.Log.Info().Msg("stop file present; not starting")
		return nil
	}
	if l.Reg == nil {
		reg, err := l.DB.Register(l.Name)
		if err != nil {
			return fmt.Errorf("register worker: %w", err)
		}
		defer reg.Close()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("fsnotify: %w", err)
	}
	defer w.Close()
	watch := []string{l.DB.Path(l.Input), l.DB.Path(spool.Tmp)}
	if l.Gate != nil {
		watch = append(watch, l.Gate.Dirs()...)
	}
	for _, d := range watch {
		if err := w.Add(d); err != nil {
			return fmt.Errorf("watch %s: %w", d, err)
		}
	}
	l.handBackOrphans()
	r := &run{Loop: l, hard: hard, slots: make(chan struct{}, l.Jobs), done: make(chan struct{}, l.Jobs)}
	err = r.loop(graceful, w)
	r.wg.Wait()
	l.handled, l.failed = r.counts()
	if l.Once {
		l.Log.Info().Int("handled", l.handled).Int("failed", l.failed).Msgf("--once: %d units handled, %d of them failed", l.handled, l.failed)
	}
	return err
}

// Ended says how many units the last Run ended (moved on or handed back)
// and how many of them it moved to fail/: a --once run in which units
// failed is one the program reports by its exit code.
func (l *Loop) Ended() (handled, failed int) { return l.handled, l.failed }

func (l *Loop) handBackOrphans() {
	back, err := l.DB.RecoverOrphans()
	if err != nil {
		l.Log.Error().Err(err).Msg("handing back units of dead workers failed")
	}
	for _, id := range back {
		l.Log.Warn().Str("unit", id).Msg("unit left by a dead worker handed back")
	}
}

type run struct {
	*Loop
	hard  context.Context
	slots chan struct{} // one token per unit in hand
	done  chan struct{} // a job ended
	wg    sync.WaitGroup
	// scanner knows the input directory's units and due times; full asks
	// it to list the whole directory at the next fill (start-up, safety
	// rescan, lost events), else it looks only at names events reported.
	scanner *spool.Scanner
	full    bool
	// gateFull asks the gate for a full refresh (the safety rescan).
	gateFull bool

	mu sync.Mutex
	// resting: unit ids handed back, not to be claimed again before the
	// time given, so trouble that hands a unit back cannot spin.
	resting map[string]time.Time
	stopErr error // the first Outcome.Stop
	// handled and failed count the units this run ended (moved on or
	// handed back) and those of them it moved to fail/.
	handled, failed int
}

// count records one unit ended, failed or not.
func (r *run) count(failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handled++
	if failed {
		r.failed++
	}
}

func (r *run) counts() (handled, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handled, r.failed
}

// handBackRest is how long a handed-back unit rests before this worker
// takes it again.
const handBackRest = 10 * time.Second

func (r *run) rest(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resting == nil {
		r.resting = map[string]time.Time{}
	}
	r.resting[id] = time.Now().Add(handBackRest)
}

// restingUntil is when id may be claimed again (zero: now).
func (r *run) restingUntil(id string, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.resting[id]
	if ok && !now.Before(t) {
		delete(r.resting, id)
		return time.Time{}
	}
	return t
}

func (r *run) stop(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopErr == nil {
		r.stopErr = err
	}
}

func (r *run) stopped() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopErr
}

func (r *run) loop(graceful context.Context, w *fsnotify.Watcher) error {
	r.scanner = r.DB.NewScanner(r.Input, r.DueOf)
	if r.Gate != nil {
		r.scanner.SetNote(r.Gate.Note)
	}
	r.full = true
	r.gateFull = true
	rescan := time.NewTicker(r.Rescan)
	defer rescan.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := r.stopped(); err != nil {
			r.Log.Error().Err(err).Int("in_hand", len(r.slots)).Msg("stopping: finishing the units in hand")
			return err
		}
		if graceful.Err() != nil || r.DB.StopRequested() {
			r.Log.Info().Int("in_hand", len(r.slots)).Msg("stopping: finishing the units in hand")
			return nil
		}
		// With Once the listing is done whole before the claims, since
		// "nothing is due" needs all of it. Else claims come first and a
		// listing under way takes one short step after them, so a unit
		// that arrived during a step waits for no other.
		if r.Once {
			if _, err := r.listStep(time.Hour); err != nil {
				return err
			}
		}
		next, claimed, err := r.fill()
		if err != nil {
			return err
		}
		// After a step, look again before sleeping: the listing may go
		// on, or have just found units due.
		stepped, err := r.listStep(listBudget)
		if err != nil {
			return err
		}
		if r.Once && !stepped && claimed == 0 && len(r.slots) == 0 {
			return nil
		}
		resetTimer(timer, next)
		if err := r.wait(graceful, w, timer, rescan, stepped); err != nil {
			return err
		}
	}
}

// wait blocks until something may have changed: a unit arrived in the
// input directory, the stop file appeared, a job ended, the due timer or
// the safety rescan fired. Other traffic in tmp/ (claims being written by
// any worker) is not a reason to wake. Events already queued are taken
// along, so a burst of them costs one fill. While a listing is under way
// (busy) it only takes the queued events and returns, so the next step of
// the listing comes after any claim they allow.
func (r *run) wait(graceful context.Context, w *fsnotify.Watcher, timer *time.Timer, rescan *time.Ticker, busy bool) error {
	for woke := busy; ; {
		var ev fsnotify.Event
		var ok bool
		if woke {
			select {
			case ev, ok = <-w.Events:
			default:
				return nil
			}
		} else {
			select {
			case <-graceful.Done():
				return nil
			case <-r.done:
				return nil
			case <-timer.C:
				return nil
			case <-rescan.C:
				r.handBackOrphans()
				r.full = true
				r.gateFull = true
				return nil
			case err := <-w.Errors:
				// An overflow loses events, never units: list it all.
				r.Log.Warn().Err(err).Msg("file watch trouble; rescanning")
				r.full = true
				return nil
			case ev, ok = <-w.Events:
			}
		}
		if !ok {
			return errors.New("fsnotify watcher closed")
		}
		woke = r.event(ev) || woke
	}
}

// event notes a file watch event and reports whether it is a reason to
// look for work.
func (r *run) event(ev fsnotify.Event) bool {
	switch filepath.Dir(ev.Name) {
	case r.DB.Path(r.Input):
		r.scanner.Changed(filepath.Base(ev.Name))
		return true
	case r.DB.Path(spool.Tmp):
		return ev.Name == r.DB.Path(spool.Tmp, spool.StopFile)
	}
	if r.Gate != nil {
		return r.Gate.Event(ev.Name)
	}
	return false
}

// listStep starts a full listing when one is asked for and takes its next
// step, of about budget. It reports whether there was a listing to step.
func (r *run) listStep(budget time.Duration) (bool, error) {
	if r.full {
		r.full = false
		if err := r.scanner.StartListing(); err != nil {
			return false, fmt.Errorf("scan %s: %w", r.DB.Path(r.Input), err)
		}
	}
	if !r.scanner.Listing() {
		return false, nil
	}
	if _, err := r.scanner.Step(time.Now(), budget); err != nil {
		return true, fmt.Errorf("scan %s: %w", r.DB.Path(r.Input), err)
	}
	return true, nil
}

// listBudget is how long one step of a full listing may keep the loop
// from claiming.
const listBudget = 3 * time.Millisecond

// fill claims due units while there are free slots. It returns the earliest
// future due time seen and how many units it claimed.
func (r *run) fill() (time.Time, int, error) {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	s := r.scanner
	if len(r.slots) == cap(r.slots) {
		return time.Time{}, 0, nil
	}
	gateNext, err := r.refreshGate(now)
	if err != nil {
		return time.Time{}, 0, err
	}
	due, next, err := s.Refresh(now)
	if err != nil {
		return next, 0, fmt.Errorf("scan %s: %w", r.DB.Path(r.Input), err)
	}
	if !gateNext.IsZero() && (next.IsZero() || gateNext.Before(next)) {
		next = gateNext
	}
	claimed := 0
	for _, e := range due {
		if len(r.slots) == cap(r.slots) || r.DB.StopRequested() || r.stopped() != nil {
			break
		}
		id, _, _ := spool.ParseName(e.Name)
		if t := r.restingUntil(id, now); !t.IsZero() {
			if next.IsZero() || t.Before(next) {
				next = t
			}
			continue
		}
		c, err := r.claim(e, now)
		if errors.Is(err, errHeld) {
			continue
		}
		switch {
		case errors.Is(err, spool.ErrBusy):
			// Locked by whoever just moved it here, or by a worker
			// claiming it: look again in a moment.
			if soon := now.Add(busyRetry); next.IsZero() || soon.Before(next) {
				next = soon
			}
			continue
		case errors.Is(err, spool.ErrTaken), errors.Is(err, spool.ErrNotDue):
			// Gone, or not what the scanner remembered: read it again.
			s.Changed(e.Name)
			continue
		case err != nil:
			r.Log.Error().Err(err).Str("file", e.Name).Msg("claim failed")
			continue
		}
		s.Changed(e.Name)
		claimed++
		r.slots <- struct{}{}
		r.wg.Add(1)
		go r.handle(c)
	}
	return next, claimed, nil
}

func (r *run) handle(c *spool.Claim) {
	defer func() {
		if p := recover(); p != nil {
			r.Log.Error().Str("unit", c.ID()).Msgf("internal error: %v", p)
		}
		if !c.Ended() {
			r.rest(c.ID())
			if err := c.Release(); err != nil {
				r.Log.Error().Err(err).Str("unit", c.ID()).Msg("handing back failed")
			} else {
				r.moved(c, c.From(), Outcome{})
			}
		}
		<-r.slots
		// Only a wake-up: one pending is enough, and after the loop has
		// returned nobody reads it.
		select {
		case r.done <- struct{}{}:
		default:
		}
		r.wg.Done()
	}()
	if c.Unit == nil {
		r.count(r.rejectUnreadable(c))
		return
	}
	r.count(r.apply(c, r.runHandler(c)))
}

// runHandler opens the unit's log, records its path in the unit, and runs the
// handler over a copy of the unit.
func (r *run) runHandler(c *spool.Claim) Outcome {
	u := c.Unit.Clone()
	ulog, err := openUnitLog(r.DB, c, u, r.Name)
	if err != nil {
		return dbTrouble("cannot open the unit log", err)
	}
	defer ulog.Close()
	if err := c.Update(u); err != nil {
		return dbTrouble("cannot save the unit", err)
	}
	st := &stepper{c: c, obs: r.Observer}
	j := &Job{Unit: u, Name: c.Name(), Log: ulog, Save: c.Update,
		step: func(name string) error { return st.begin(name, time.Now()) }}
	o := r.Handle(r.hard, j)
	st.end(time.Now())
	o.Event(&ulog.Log).Msg(o.Msg)
	return o
}

// dbTrouble hands a unit back after the database failed it; a full disk
// stops the worker, as every other unit would meet it too.
func dbTrouble(what string, err error) Outcome {
	o := HandBack(fmt.Sprintf("%s: %v", what, err))
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		o.Stop = fmt.Errorf("the database disk is full (%s: %w): free space there, then start the worker again", what, err)
	}
	return o
}

// apply moves the unit as the outcome says and logs the move; failed says
// whether it moved the unit to fail/.
func (r *run) apply(c *spool.Claim, o Outcome) (failed bool) {
	ev := o.Event(&r.Log)
	if o.Stop != nil {
		r.stop(o.Stop)
		o.To, o.Unit = "", nil
	}
	if o.To == "" || o.Unit == nil {
		if r.hard.Err() == nil {
			r.rest(c.ID())
		}
		if err := c.Release(); err != nil {
			r.Log.Error().Err(err).Str("unit", c.ID()).Msg("handing back failed")
			return false
		}
		r.moved(c, c.From(), o)
		ev.Str("unit", c.ID()).Str("to", string(c.From())).Msg("handed back: " + o.Msg)
		return false
	}
	dst, err := c.Finish(o.To, o.Unit)
	if err == nil || errors.Is(err, spool.ErrNotSynced) {
		r.moved(c, o.To, o)
	}
	if errors.Is(err, spool.ErrNotSynced) {
		// The move happened; only its directory sync failed.
		ev.Str("unit", c.ID()).Str("to", string(o.To)).Str("file", dst).Err(err).Msg(o.Msg + " (the directory could not be synced: a crash now may bring the unit back)")
		return o.To == spool.Fail
	}
	if err != nil {
		r.Log.Error().Err(err).Str("unit", c.ID()).Msg("saving the unit failed; handing it back")
		if t := dbTrouble("saving the unit", err); t.Stop != nil {
			r.stop(t.Stop)
		}
		r.rest(c.ID())
		return false
	}
	ev.Str("unit", c.ID()).Str("to", string(o.To)).Str("file", dst).Msg(o.Msg)
	return o.To == spool.Fail
}

// rejectUnreadable moves a file that is not a valid unit to fail/ as it
// is, and says whether it did.
func (r *run) rejectUnreadable(c *spool.Claim) bool {
	dst, err := c.FinishRaw(spool.Fail)
	if err != nil && !errors.Is(err, spool.ErrNotSynced) {
		r.Log.Error().Err(err).Str("unit", c.ID()).Msg("moving an unreadable unit file to fail/ failed")
		return false
	}
	r.moved(c, spool.Fail, Outcome{To: spool.Fail, Class: devproto.ClassOther})
	r.Log.Error().Str("unit", c.ID()).Str("file", dst).Msgf("unit file cannot be read (%v): moved to fail/ unchanged; fix it and use migdb-add-unit --retry", c.ParseErr)
	return true
}

// busyRetry is how soon a locked unit file is looked at again.
const busyRetry = 20 * time.Millisecond

func resetTimer(t *time.Timer, next time.Time) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	d := time.Hour
	if !next.IsZero() {
		d = time.Until(next)
		if d < 0 {
			d = 0
		}
	}
	t.Reset(d)
}
