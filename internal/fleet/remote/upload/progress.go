package upload

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// meter reports upload progress every interval from its own goroutine, so
// a stalled transfer still shows up (with a falling rate).
type meter struct {
	log   zerolog.Logger
	cb    func(Progress)
	total int64
	start time.Time
	done  atomic.Int64
	name  atomic.Value // string
	quit  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newMeter(opt Options, todo []action) *meter {
	m := &meter{log: opt.Log, cb: opt.Progress, start: time.Now(), quit: make(chan struct{})}
	for _, a := range todo {
		m.total += a.entry.Size - a.offset
	}
	m.name.Store("")
	interval := opt.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	m.wg.Add(1)
	go m.loop(interval)
	return m
}

func (m *meter) loop(interval time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			m.report("upload finished")
			return
		case <-t.C:
			m.report("upload progress")
		}
	}
}

func (m *meter) add(n int64)      { m.done.Add(n) }
func (m *meter) file(name string) { m.name.Store(name) }

func (m *meter) report(msg string) {
	p := Progress{File: m.name.Load().(string), Done: m.done.Load(), Total: m.total, Elapsed: time.Since(m.start)}
	if s := p.Elapsed.Seconds(); s > 0 {
		p.Rate = float64(p.Done) / s
	}
	m.log.Info().Str("file", p.File).Int64("done", p.Done).Int64("total", p.Total).
		Float64("MB_per_s", p.Rate/1e6).Dur("elapsed", p.Elapsed).Msg(msg)
	if m.cb != nil {
		m.cb(p)
	}
}

// stop sends the final report and ends the goroutine; it may be called twice.
func (m *meter) stop() {
	m.once.Do(func() {
		close(m.quit)
		m.wg.Wait()
	})
}
