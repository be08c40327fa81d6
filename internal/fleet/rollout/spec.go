package rollout

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	// Zone names work on hosts without tzdata, and in static release builds.
	_ "time/tzdata"

	"github.com/fleetmig/balena-migrate/internal/devproto"
)

// The settings a rollout is made of, as the operator writes them, and
// what they mean. Each Parse function's error says what is wrong and how
// to write it; config uses them to refuse a bad value before any unit is
// touched.

// Plan is a rollout's waves (--waves / MIG_WAVES).
type Plan struct {
	Spec  string // as given, e.g. "1,10,25%,100%"
	waves []size
}

// size is one wave's cumulative size: a count, or a share of the units
// submitted.
type size struct {
	count   int
	percent float64 // used when count == 0
}

// ParseWaves reads a comma-separated list of cumulative wave sizes, each
// a count of units or a percentage of the units submitted; the last must
// be 100%.
func ParseWaves(s string) (Plan, error) {
	p := Plan{Spec: s}
	lastCount, lastPct := 0, 0.0
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if pct, ok := strings.CutSuffix(f, "%"); ok {
			v, err := strconv.ParseFloat(pct, 64)
			if err != nil || v <= 0 || v > 100 || math.IsNaN(v) {
				return Plan{}, fmt.Errorf("wave %q: a percentage must be above 0 and at most 100 (waves are cumulative: 1,10,25%%,100%%)", f)
			}
			if v <= lastPct {
				return Plan{}, fmt.Errorf("wave %q: waves are cumulative, so each percentage must be larger than the one before", f)
			}
			lastPct = v
			p.waves = append(p.waves, size{percent: v})
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return Plan{}, fmt.Errorf("wave %q: give a number of units (at least 1) or a percentage like 25%% (waves are cumulative: 1,10,25%%,100%%)", f)
		}
		if n <= lastCount {
			return Plan{}, fmt.Errorf("wave %q: waves are cumulative, so each count must be larger than the one before", f)
		}
		lastCount = n
		p.waves = append(p.waves, size{count: n})
	}
	if last := p.waves[len(p.waves)-1]; last.count != 0 || last.percent != 100 {
		return Plan{}, errors.New("the last wave must be 100% so that every unit is started in the end (to hold a rollout, use migdb-migrate --stop)")
	}
	return p, nil
}

// Waves is the number of waves (0 for no plan).
func (p Plan) Waves() int { return len(p.waves) }

// Limit is how many units, in submission order, waves 1..k hold when
// submitted units have been submitted: never less than an earlier wave.
func (p Plan) Limit(k, submitted int) int {
	limit := 0
	for i := 0; i < k && i < len(p.waves); i++ {
		w := p.waves[i]
		n := w.count
		if w.count == 0 {
			n = int(math.Ceil(w.percent * float64(submitted) / 100))
		}
		limit = max(limit, min(n, submitted))
	}
	return limit
}

// WaveOf is the wave (from 1) of the unit at rank (from 0).
func (p Plan) WaveOf(rank, submitted int) int {
	for k := 1; k <= len(p.waves); k++ {
		if rank < p.Limit(k, submitted) {
			return k
		}
	}
	return len(p.waves)
}

// Limit is a circuit breaker threshold: more than Count failures, or a
// failed share above Percent.
type Limit struct {
	Count     int
	Percent   float64
	IsPercent bool
}

func (l Limit) String() string {
	if l.IsPercent {
		return strconv.FormatFloat(l.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(l.Count)
}

// Passed reports whether failed of ended units passes the limit.
func (l Limit) Passed(failed, ended int) bool {
	if l.IsPercent {
		return ended > 0 && float64(failed)*100 > l.Percent*float64(ended)
	}
	return failed > l.Count
}

// Breaker is --max-fail / MIG_MAX_FAIL: a limit over every failure, and
// limits per failure class.
type Breaker struct {
	Spec    string
	All     *Limit
	ByClass map[devproto.Class]Limit
}

// ParseMaxFail reads "N", "P%", or either followed by class limits, or
// class limits alone: "10%", "5", "10%,stage2=0", "stage2=0,lost=2".
func ParseMaxFail(s string) (Breaker, error) {
	b := Breaker{Spec: s, ByClass: map[devproto.Class]Limit{}}
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		class, val, isClass := strings.Cut(f, "=")
		if !isClass {
			val = f
		}
		l, err := parseLimit(strings.TrimSpace(val))
		if err != nil {
			return Breaker{}, fmt.Errorf("%q: %w", f, err)
		}
		if !isClass {
			if i != 0 {
				return Breaker{}, fmt.Errorf("%q: the limit over all failures comes first (10%%,stage2=0)", f)
			}
			b.All = &l
			continue
		}
		c := devproto.Class(strings.TrimSpace(class))
		if !knownClass(c) {
			return Breaker{}, fmt.Errorf("%q: %q is not a failure class (see FAIL_CLASS in the README: stage2, lost, no_space, ...)", f, c)
		}
		b.ByClass[c] = l
	}
	return b, nil
}

func parseLimit(v string) (Limit, error) {
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p < 0 || p >= 100 || math.IsNaN(p) {
			return Limit{}, errors.New("a percentage must be at least 0 and below 100")
		}
		return Limit{Percent: p, IsPercent: true}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return Limit{}, errors.New("give the number of failures allowed (0 stops at the first) or a percentage of the ended units like 10%")
	}
	return Limit{Count: n}, nil
}

func knownClass(c devproto.Class) bool {
	for _, k := range devproto.Classes() {
		if k == c {
			return true
		}
	}
	return false
}

// Window is a daily maintenance window (MIG_WINDOW): units start only
// inside it; one that started runs to its end.
type Window struct {
	Spec  string
	spans []span
}

// span is one part of a window, in seconds of the day; to < from wraps
// past midnight.
type span struct{ from, to int }

var clockRe = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)

// ParseWindow reads "HH:MM-HH:MM", or several joined by commas; a window
// whose end is before its start runs past midnight (22:00-05:00).
func ParseWindow(s string) (*Window, error) {
	w := &Window{Spec: s}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		a, b, ok := strings.Cut(f, "-")
		from, okA := clock(strings.TrimSpace(a))
		to, okB := clock(strings.TrimSpace(b))
		if !ok || !okA || !okB {
			return nil, fmt.Errorf("window %q: write it as HH:MM-HH:MM in 24-hour time, e.g. 22:00-05:00 (several: 01:00-04:00,22:00-23:30)", f)
		}
		if from == to {
			return nil, fmt.Errorf("window %q: it starts when it ends; leave MIG_WINDOW unset for no window", f)
		}
		w.spans = append(w.spans, span{from, to})
	}
	return w, nil
}

func clock(s string) (int, bool) {
	m := clockRe.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	h, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return h*3600 + mi*60, true
}

// Open reports whether t (in the window's time zone) is inside it.
func (w *Window) Open(t time.Time) bool {
	sec := t.Hour()*3600 + t.Minute()*60 + t.Second()
	for _, s := range w.spans {
		if s.from < s.to && sec >= s.from && sec < s.to || s.from > s.to && (sec >= s.from || sec < s.to) {
			return true
		}
	}
	return false
}

// Next is the first opening of the window after t, in t's zone.
func (w *Window) Next(t time.Time) time.Time {
	var best time.Time
	y, m, d := t.Date()
	for off := 0; off <= 2; off++ {
		for _, s := range w.spans {
			c := time.Date(y, m, d+off, s.from/3600, s.from%3600/60, 0, 0, t.Location())
			if c.After(t) && (best.IsZero() || c.Before(best)) {
				best = c
			}
		}
	}
	return best
}

var offsetRe = regexp.MustCompile(`^UTC([+-])([0-9]{1,2})(?::([0-5][0-9]))?$`)

// ParseZone reads MIG_TZ: "" is the host's local time, "UTC+05:30" a fixed
// offset, anything else a time zone name (Europe/Berlin).
func ParseZone(s string) (*time.Location, error) {
	if s == "" {
		return time.Local, nil
	}
	if m := offsetRe.FindStringSubmatch(s); m != nil {
		h, _ := strconv.Atoi(m[2])
		mi := 0
		if m[3] != "" {
			mi, _ = strconv.Atoi(m[3])
		}
		off := h*3600 + mi*60
		if h > 14 {
			return nil, fmt.Errorf("time zone %q: an offset is at most 14 hours", s)
		}
		if m[1] == "-" {
			off = -off
		}
		return time.FixedZone(s, off), nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: not a zone name like Europe/Berlin or an offset like UTC+05:30", s)
	}
	return loc, nil
}

var groupRe = regexp.MustCompile(`^[A-Za-z0-9_:@+][A-Za-z0-9._:@+-]{0,127}$`)

// CheckGroup validates a group name (MIG_GROUP): it names a file of the
// database, so the characters of a unit id.
func CheckGroup(g string) error {
	if !groupRe.MatchString(g) {
		return fmt.Errorf("group %q: use 1-128 characters of letters, digits and . _ : @ + -, not starting with - or .", g)
	}
	return nil
}
