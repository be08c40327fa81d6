// Package status is the live view of a database that a worker serves on
// --http: the units in each state, the failures by class with their units,
// the units in flight with the step they are in, the rollout's wave and
// pause, the rate and the time left; and the page at / that shows it.
//
// A snapshot costs a listing of the database's directories (names only)
// and a read of the units in flight and of the failures not read before,
// so a scrape of a database of 100,000 units stays cheap; it is taken at
// most once per MaxAge however often the page and /metrics are asked.
package status

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"golang.org/x/sys/unix"
)

// Snapshot is the database at one moment.
type Snapshot struct {
	At   time.Time
	Took time.Duration // how long taking it took
	// Units counts the units in each state directory.
	Units map[spool.Dir]int
	// Failed counts the failures by class; FailedUnits names the first
	// maxListed units of each class.
	Failed      map[devproto.Class]int
	FailedUnits map[devproto.Class][]string
	// InFlight are the units claimed by a worker now, longest in their
	// step first; WaitingOnline counts the migrated units not online yet.
	InFlight      []Flight
	WaitingOnline int
	Rollout       Rollout
	// EndedPerHour is the rate units ended at (done/ or fail/), seen by
	// this process over the last hour (since it started, when younger);
	// 0 until it has watched for a minute. Left is what the rate says
	// about the time left for the units not ended.
	EndedPerHour float64
	Left         time.Duration
}

// Flight is a claimed unit.
type Flight struct {
	ID    string
	Phase string // "migrate" (claimed from units/) or "check" (from process/)
	Step  string
	Since time.Time // when its step began (when it was claimed, without one)
}

// Rollout is the rollout's state.
type Rollout struct {
	Waves      string // the plan, "" without waves
	Wave, Of   int    // the open wave and how many there are
	Limit      int    // units the open waves hold
	Submitted  int    // units submitted
	Paused     *rollout.Pause
	PauseError string // PAUSED exists but could not be read
}

// maxListed bounds the unit ids listed per failure class.
const maxListed = 20

// Census takes snapshots of a database.
type Census struct {
	DB *spool.DB
	// MaxAge is how long a snapshot is reused (default 1 s).
	MaxAge time.Duration

	mu      sync.Mutex
	last    *Snapshot
	fails   map[string]failed // by file name in fail/
	order   *spool.Order
	plans   map[string]rollout.Plan
	history []sample
	started time.Time
	dirents []byte
}

type failed struct {
	id    string
	class devproto.Class
	at    time.Time
}

// sample is the count of ended units at a moment.
type sample struct {
	at    time.Time
	ended int
}

// Snapshot returns a snapshot no older than MaxAge.
func (c *Census) Snapshot() (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = time.Second
	}
	now := time.Now()
	if c.last != nil && now.Sub(c.last.At) < maxAge {
		return c.last, nil
	}
	s, err := c.take(now)
	if err != nil {
		return nil, err
	}
	s.Took = time.Since(now)
	c.last = s
	return s, nil
}

func (c *Census) take(now time.Time) (*Snapshot, error) {
	if c.fails == nil {
		c.fails, c.plans, c.started = map[string]failed{}, map[string]rollout.Plan{}, now
	}
	s := &Snapshot{At: now, Units: map[spool.Dir]int{}, Failed: map[devproto.Class]int{}, FailedUnits: map[devproto.Class][]string{}}
	for _, d := range []spool.Dir{spool.Units, spool.Process, spool.Done} {
		n, err := c.count(c.DB.Path(d))
		if err != nil {
			return nil, err
		}
		s.Units[d] = n
	}
	s.WaitingOnline = s.Units[spool.Process]
	if err := c.takeTmp(s); err != nil {
		return nil, err
	}
	if err := c.takeFail(s); err != nil {
		return nil, err
	}
	if err := c.takeRollout(s); err != nil {
		return nil, err
	}
	c.rate(s)
	return s, nil
}

// count counts the unit files of a directory from its entries alone.
func (c *Census) count(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if c.dirents == nil {
		c.dirents = make([]byte, 64<<10)
	}
	n := 0
	for {
		got, err := unix.Getdents(int(f.Fd()), c.dirents)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if got <= 0 {
			return n, nil
		}
		for off := 0; off < got; {
			reclen := int(binary.NativeEndian.Uint16(c.dirents[off+16:]))
			name := c.dirents[off+19 : off+reclen]
			if len(name) > 0 && name[0] != '.' && (bytes.HasPrefix(name, []byte("unit-")) || bytes.HasPrefix(name, []byte("fail-"))) {
				n++
			}
			off += reclen
		}
	}
}

// takeTmp reads the claims in tmp/: the units in flight.
func (c *Census) takeTmp(s *Snapshot) error {
	names, err := spool.ReadNames(c.DB.Path(spool.Tmp))
	if err != nil {
		return err
	}
	for _, n := range names {
		name, ok := spool.UnitName(spool.Tmp, n)
		if !ok {
			continue
		}
		s.Units[spool.Tmp]++
		id, _, _ := spool.ParseName(name)
		f := Flight{ID: id, Phase: "migrate", Step: "claimed"}
		if strings.HasPrefix(n, string(spool.Process)+"~") {
			f.Phase, f.Step = "check", "online check"
		}
		p := c.DB.Path(spool.Tmp, n)
		if st, err := os.Stat(p); err == nil {
			f.Since = st.ModTime()
		}
		if f.Phase != "migrate" {
			s.InFlight = append(s.InFlight, f)
			continue
		}
		if data, err := os.ReadFile(p); err == nil {
			if u, err := unit.Parse(data); err == nil && u.Get(unit.FieldStep) != "" {
				if ts, err := strconv.ParseInt(u.Get(unit.FieldStepTS), 10, 64); err == nil {
					f.Step, f.Since = u.Get(unit.FieldStep), time.Unix(ts, 0)
				}
			}
		}
		s.InFlight = append(s.InFlight, f)
	}
	sort.Slice(s.InFlight, func(i, j int) bool {
		if !s.InFlight[i].Since.Equal(s.InFlight[j].Since) {
			return s.InFlight[i].Since.Before(s.InFlight[j].Since)
		}
		return s.InFlight[i].ID < s.InFlight[j].ID
	})
	return nil
}

// takeFail counts the failures by class; a failure's file is read once.
func (c *Census) takeFail(s *Snapshot) error {
	names, err := spool.ReadNames(c.DB.Path(spool.Fail))
	if err != nil {
		return err
	}
	seen := make(map[string]failed, len(names))
	for _, n := range names {
		id, _, ok := spool.ParseName(n)
		if !ok {
			continue
		}
		f, known := c.fails[n]
		if !known {
			f = failed{id: id, class: devproto.ClassOther}
			if data, err := os.ReadFile(c.DB.Path(spool.Fail, n)); err == nil {
				if u, err := unit.Parse(data); err == nil {
					if cl := u.Get(unit.FieldFailClass); cl != "" {
						f.class = devproto.Class(cl)
					}
					f.at, _, _ = u.FailTime()
				}
			} else if errors.Is(err, os.ErrNotExist) {
				continue
			}
		}
		seen[n] = f
	}
	c.fails = seen
	list := make([]failed, 0, len(seen))
	for _, f := range seen {
		list = append(list, f)
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].at.Equal(list[j].at) {
			return list[i].at.After(list[j].at)
		}
		return list[i].id < list[j].id
	})
	for _, f := range list {
		s.Failed[f.class]++
		if len(s.FailedUnits[f.class]) < maxListed {
			s.FailedUnits[f.class] = append(s.FailedUnits[f.class], f.id)
		}
	}
	s.Units[spool.Fail] = len(seen)
	return nil
}

// takeRollout reads db/ROLLOUT, db/PAUSED and the submission order.
func (c *Census) takeRollout(s *Snapshot) error {
	st, err := rollout.ReadState(c.DB)
	if err != nil {
		return err
	}
	if p, err := rollout.ReadPause(c.DB); err != nil {
		s.Rollout.PauseError = err.Error()
	} else {
		s.Rollout.Paused = p
	}
	if c.order, err = c.DB.ReadOrder(c.order); err != nil {
		return err
	}
	s.Rollout.Submitted = c.order.Len()
	if st.Waves == "" {
		return nil
	}
	plan, ok := c.plans[st.Waves]
	if !ok {
		if plan, err = rollout.ParseWaves(st.Waves); err != nil {
			return err
		}
		c.plans[st.Waves] = plan
	}
	s.Rollout.Waves, s.Rollout.Wave, s.Rollout.Of = st.Waves, st.Wave, plan.Waves()
	s.Rollout.Limit = plan.Limit(st.Wave, c.order.Len())
	return nil
}

// rate keeps an hour of samples of the ended count and derives the rate
// and the time left from them.
func (c *Census) rate(s *Snapshot) {
	ended := s.Units[spool.Done] + s.Units[spool.Fail]
	if n := len(c.history); n == 0 || s.At.Sub(c.history[n-1].at) >= 10*time.Second {
		c.history = append(c.history, sample{at: s.At, ended: ended})
	}
	cut := 0
	for cut < len(c.history)-1 && s.At.Sub(c.history[cut].at) > time.Hour {
		cut++
	}
	c.history = c.history[cut:]
	first := c.history[0]
	span := s.At.Sub(first.at)
	if span < time.Minute {
		return
	}
	s.EndedPerHour = float64(ended-first.ended) / span.Hours()
	left := s.Units[spool.Units] + s.Units[spool.Tmp] + s.Units[spool.Process]
	if s.EndedPerHour > 0 {
		s.Left = time.Duration(float64(left) / s.EndedPerHour * float64(time.Hour))
	}
}
