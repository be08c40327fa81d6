package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// BenchmarkWakeLatency measures the time from a unit landing in units/ to
// its claim, with 1 and 8 idle workers waiting, for this package's loop
// (fsnotify) and for the obvious alternative: a 1 s sleep-poll loop.
func BenchmarkWakeLatency(b *testing.B) {
	for _, kind := range []string{"fsnotify", "poll1s"} {
		for _, workers := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/workers=%d", kind, workers), func(b *testing.B) {
				lat := measureWake(b, kind, workers, b.N)
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
			})
		}
	}
}

func measureWake(b *testing.B, kind string, workers, n int) []time.Duration {
	db, err := spool.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	claimed := make(chan time.Time, n)
	handle := func(_ context.Context, j *Job) Outcome {
		claimed <- time.Now()
		return Outcome{To: spool.Process, Unit: j.Unit, Msg: "bench"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if kind == "fsnotify" {
				l := &Loop{DB: db, Input: spool.Units, Name: "bench", Jobs: 1, Rescan: time.Hour, Log: zerolog.Nop(), Handle: handle}
				l.Run(ctx, context.Background())
				return
			}
			pollLoop(ctx, db, handle)
		}()
	}
	time.Sleep(100 * time.Millisecond)
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		u, _ := unit.New(fmt.Sprintf("b%06d", i), time.Now())
		t0 := time.Now()
		if _, err := db.Add(u); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-claimed).Sub(t0))
		// Land the next unit at a random phase of a poller's sleep.
		time.Sleep(time.Duration(i%7) * 37 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	return lat
}

// pollLoop is the sleep-poll worker the original scripts used.
func pollLoop(ctx context.Context, db *spool.DB, handle Handler) {
	s := db.NewScanner(spool.Units, nil)
	for ctx.Err() == nil {
		due, _, _ := s.Scan(time.Now())
		for _, e := range due {
			c, err := db.Claim(spool.Units, e.Name, time.Now(), nil)
			if errors.Is(err, spool.ErrTaken) || errors.Is(err, spool.ErrBusy) || err != nil {
				continue
			}
			o := handle(ctx, &Job{Unit: c.Unit.Clone(), Name: c.Name(), Save: c.Update})
			c.Finish(o.To, o.Unit)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// BenchmarkClaimWhileListing measures the time from a unit landing in
// units/ to its claim while 100,000 waiting units are listed over and over
// (a safety rescan every 50 ms, so most units land mid-listing), for this
// package's loop, which lists in short steps between claims, and for the
// obvious alternative: the same events and rescans, the listing done whole.
// "floor" is this package's loop over 10 waiting units: what claiming
// costs on this machine when there is nothing to list.
//
//	go test -run '^$' -bench ClaimWhileListing -benchtime 300x ./internal/worker
func BenchmarkClaimWhileListing(b *testing.B) {
	big, err := spool.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	writeWaiting(b, big, 100000)
	small, err := spool.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	writeWaiting(b, small, 10)
	runs := 0
	for _, kind := range []string{"steps", "whole", "floor"} {
		db := big
		if kind == "floor" {
			db = small
		}
		b.Run(kind, func(b *testing.B) {
			runs++
			claimed := make(chan time.Time, 1)
			handle := func(_ context.Context, j *Job) Outcome {
				claimed <- time.Now()
				return Outcome{To: spool.Process, Unit: j.Unit, Msg: "bench"}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				if kind != "whole" {
					l := &Loop{DB: db, Input: spool.Units, Name: "bench", Jobs: 1, Rescan: 50 * time.Millisecond, Log: zerolog.Nop(), Handle: handle}
					l.Run(ctx, context.Background())
					return
				}
				wholeListingLoop(ctx, db, 50*time.Millisecond, handle)
			}()
			// The first listing reads every file; measure after it.
			probe(b, db, fmt.Sprintf("%s-%d-warm", kind, runs), claimed)
			time.Sleep(15 * time.Second)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat = append(lat, probe(b, db, fmt.Sprintf("%s-%d-%06d", kind, runs, i), claimed))
				time.Sleep(time.Duration(i%7) * 7 * time.Millisecond)
			}
			b.StopTimer()
			cancel()
			<-done
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
		})
	}
}

// probe moves a due unit into units/ and waits for its claim; the time
// runs from the rename, as a unit lands.
func probe(b *testing.B, db *spool.DB, id string, claimed <-chan time.Time) time.Duration {
	u, _ := unit.New(id, time.Now())
	data, err := u.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	tmp := db.Path(spool.Tmp, ".bench-"+id)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := os.Rename(tmp, db.Path(spool.Units, spool.FileName(spool.Units, id, "t"))); err != nil {
		b.Fatal(err)
	}
	select {
	case t := <-claimed:
		return t.Sub(t0)
	case <-time.After(time.Minute):
		b.Fatalf("unit %s not claimed within a minute", id)
		return 0
	}
}

// writeWaiting writes n units due in a week straight into units/ (no
// fsync, no id index: set-up only).
func writeWaiting(b *testing.B, db *spool.DB, n int) {
	for i := 0; i < n; i++ {
		u, _ := unit.New(fmt.Sprintf("wait-%06d", i), time.Now())
		u.SetDue(time.Now().Add(7 * 24 * time.Hour))
		data, err := u.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(db.Path(spool.Units, spool.FileName(spool.Units, u.ID(), "t")), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

// wholeListingLoop is the alternative: file events looked at one by one as
// in Loop, but each safety rescan lists the directory in one go.
func wholeListingLoop(ctx context.Context, db *spool.DB, rescan time.Duration, handle Handler) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return
	}
	defer w.Close()
	w.Add(db.Path(spool.Units))
	s := db.NewScanner(spool.Units, nil)
	tick := time.NewTicker(rescan)
	defer tick.Stop()
	for full := true; ctx.Err() == nil; {
		look := s.Refresh
		if full {
			look = s.Scan
		}
		due, _, _ := look(time.Now())
		full = false
		for _, e := range due {
			c, err := db.Claim(spool.Units, e.Name, time.Now(), nil)
			s.Changed(e.Name)
			if err != nil {
				continue
			}
			o := handle(ctx, &Job{Unit: c.Unit.Clone(), Name: c.Name(), Save: c.Update})
			c.Finish(o.To, o.Unit)
		}
		select {
		case <-ctx.Done():
		case ev := <-w.Events:
			s.Changed(filepath.Base(ev.Name))
		case <-tick.C:
			full = true
		}
	}
}
