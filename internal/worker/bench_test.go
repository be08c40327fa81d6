package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
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
