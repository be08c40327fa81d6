package watchdog

import (
	"context"
	"sync"
	"time"
)

// Feedable is what a Feeder feeds: a *Device.
type Feedable interface{ Feed() error }

// Feeder feeds a watchdog every interval, but only while the guarded work
// marks progress: once nothing has moved for longer than the stall limit it
// stops feeding and the watchdog resets the machine a timeout later. Work
// that moves again before that is fed again.
type Feeder struct {
	dev      Feedable
	interval time.Duration
	now      func() time.Time
	// Stalled, if set, is called once each time feeding stops.
	Stalled func(idle time.Duration)
	// FeedFailed, if set, is called on each failed feed.
	FeedFailed func(error)

	mu      sync.Mutex
	last    time.Time // last progress
	stall   time.Duration
	stopped bool // feeding stopped for want of progress
}

// NewFeeder feeds dev every interval while progress was marked within stall.
func NewFeeder(dev Feedable, interval, stall time.Duration) *Feeder {
	f := &Feeder{dev: dev, interval: interval, stall: stall, now: time.Now}
	f.last = f.now()
	return f
}

// Interval is how often to feed a watchdog with the given timeout: three
// times per timeout, so that one late tick does not reset the machine.
func Interval(timeout time.Duration) time.Duration {
	if iv := timeout / 3; iv >= 100*time.Millisecond {
		return iv
	}
	return 100 * time.Millisecond
}

// Progress records that the guarded work moved.
func (f *Feeder) Progress() {
	f.mu.Lock()
	f.last = f.now()
	f.mu.Unlock()
}

// LastProgress is when the work last marked progress.
func (f *Feeder) LastProgress() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// SetStall changes the stall limit (from the next tick on) and counts as
// progress, so that a phase starts with its full limit.
func (f *Feeder) SetStall(d time.Duration) {
	f.mu.Lock()
	f.stall, f.last = d, f.now()
	f.mu.Unlock()
}

// tick feeds the watchdog if the work moved within the stall limit and
// reports whether it fed.
func (f *Feeder) tick() bool {
	f.mu.Lock()
	idle := f.now().Sub(f.last)
	moving := idle <= f.stall
	stalledNow := !moving && !f.stopped
	f.stopped = !moving
	f.mu.Unlock()
	if stalledNow && f.Stalled != nil {
		f.Stalled(idle)
	}
	if !moving {
		return false
	}
	if err := f.dev.Feed(); err != nil {
		if f.FeedFailed != nil {
			f.FeedFailed(err)
		}
		return false
	}
	return true
}

// Run feeds until ctx is done, feeding once at the start.
func (f *Feeder) Run(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		f.tick()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
