package watchdog

import (
	"errors"
	"testing"
	"time"
)

type countFeeds struct {
	n   int
	err error
}

func (c *countFeeds) Feed() error {
	if c.err != nil {
		return c.err
	}
	c.n++
	return nil
}

func TestFeederFeedsOnlyWhileWorkMoves(t *testing.T) {
	// Each step: advance the clock, maybe mark progress or change the
	// stall limit, then tick; want says whether that tick fed.
	type step struct {
		advance  time.Duration
		progress bool
		stall    time.Duration // SetStall when > 0
		want     bool
	}
	for _, tc := range []struct {
		name        string
		stall       time.Duration
		steps       []step
		wantStalled int
	}{
		{"fresh feeder feeds", time.Minute, []step{{want: true}}, 0},
		{"within the limit without progress", time.Minute, []step{{advance: 59 * time.Second, want: true}, {advance: time.Second, want: true}}, 0},
		{"past the limit stops feeding", time.Minute, []step{{advance: 61 * time.Second, want: false}, {advance: time.Hour, want: false}}, 1},
		{"progress keeps it fed", time.Minute, []step{
			{advance: 50 * time.Second, progress: true, want: true},
			{advance: 50 * time.Second, progress: true, want: true},
			{advance: 50 * time.Second, want: true},
		}, 0},
		{"work that moves again is fed again", time.Minute, []step{
			{advance: 2 * time.Minute, want: false},
			{advance: time.Second, progress: true, want: true},
			{advance: 2 * time.Minute, want: false},
		}, 2},
		{"a longer limit for the next phase", time.Minute, []step{
			{advance: 30 * time.Second, stall: 15 * time.Minute, want: true},
			{advance: 14 * time.Minute, want: true},
			{advance: 2 * time.Minute, want: false},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			dev := &countFeeds{}
			f := &Feeder{dev: dev, interval: time.Second, stall: tc.stall, now: func() time.Time { return clock }, last: clock}
			stalled := 0
			f.Stalled = func(time.Duration) { stalled++ }
			fed := 0
			for i, s := range tc.steps {
				clock = clock.Add(s.advance)
				if s.progress {
					f.Progress()
				}
				if s.stall > 0 {
					f.SetStall(s.stall)
				}
				if got := f.tick(); got != s.want {
					t.Fatalf("step %d: fed=%t, want %t", i, got, s.want)
				}
				if s.want {
					fed++
				}
			}
			if dev.n != fed {
				t.Errorf("device fed %d times, want %d", dev.n, fed)
			}
			if stalled != tc.wantStalled {
				t.Errorf("Stalled called %d times, want %d", stalled, tc.wantStalled)
			}
		})
	}
}

func TestFeederReportsFailedFeeds(t *testing.T) {
	dev := &countFeeds{err: errors.New("EIO")}
	f := NewFeeder(dev, time.Second, time.Minute)
	var got error
	f.FeedFailed = func(err error) { got = err }
	if f.tick() {
		t.Fatal("a failed feed counted as fed")
	}
	if got == nil {
		t.Fatal("FeedFailed not called")
	}
}

func TestInterval(t *testing.T) {
	for _, tc := range []struct{ timeout, want time.Duration }{
		{60 * time.Second, 20 * time.Second},
		{15 * time.Second, 5 * time.Second},
		{time.Second, 333333333 * time.Nanosecond},
		{0, 100 * time.Millisecond},
	} {
		if got := Interval(tc.timeout); got != tc.want {
			t.Errorf("Interval(%v) = %v, want %v", tc.timeout, got, tc.want)
		}
	}
}
