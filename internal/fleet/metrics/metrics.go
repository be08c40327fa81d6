// Package metrics counts what a worker process does — pipeline steps and
// their durations, moves, SSH errors by class, balena API requests by
// route and status, the time from migration to online — and writes it,
// with the database's snapshot (package status), in Prometheus' text
// format for /metrics. It is a worker.Observer; the balena requests are
// counted by an http.RoundTripper around the API client's transport.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/status"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
)

// Metrics is one process's metrics. The zero value is not ready: use New.
type Metrics struct {
	program string
	started time.Time

	mu     sync.Mutex
	steps  map[string]*histogram
	online *histogram
	moves  map[[2]string]uint64 // from, to
	ssh    map[string]uint64    // class
	api    map[[2]string]uint64 // route, code
}

var _ worker.Observer = (*Metrics)(nil)
var _ status.Exposition = (*Metrics)(nil)

// New returns the metrics of a program (migdb-migrate, migdb-check-done).
func New(program string) *Metrics {
	return &Metrics{program: program, started: time.Now(), steps: map[string]*histogram{},
		online: newHistogram(onlineBuckets), moves: map[[2]string]uint64{}, ssh: map[string]uint64{}, api: map[[2]string]uint64{}}
}

// Bucket bounds in seconds: a step takes from a second (probe) to half an
// hour (a slow upload); a device comes online minutes after migrating.
var (
	stepBuckets   = []float64{0.25, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	onlineBuckets = []float64{30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 14400}
)

// sshClasses are the failure classes of the SSH connection and copy.
var sshClasses = map[devproto.Class]bool{
	devproto.ClassDNS: true, devproto.ClassRefused: true, devproto.ClassUnreachable: true, devproto.ClassAuth: true,
	devproto.ClassHostKey: true, devproto.ClassTimeout: true, devproto.ClassTransfer: true,
}

// Step implements worker.Observer.
func (m *Metrics) Step(name string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.steps[name]
	if !ok {
		h = newHistogram(stepBuckets)
		m.steps[name] = h
	}
	h.observe(took.Seconds())
}

// Moved implements worker.Observer.
func (m *Metrics) Moved(from, to spool.Dir, o worker.Outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.moves[[2]string{string(from), string(to)}]++
	if sshClasses[o.Class] {
		m.ssh[string(o.Class)]++
	}
	if to == spool.Done && o.Unit != nil {
		if d, ok := timeToOnline(o.Unit); ok {
			m.online.observe(d.Seconds())
		}
	}
}

// timeToOnline is the time from a unit's migration to its being online.
func timeToOnline(u *unit.Unit) (time.Duration, bool) {
	from, err1 := time.Parse(time.RFC3339, u.Get(unit.FieldMigratedISOTS))
	to, err2 := time.Parse(time.RFC3339, u.Get(unit.FieldDoneISOTS))
	if err1 != nil || err2 != nil || to.Before(from) {
		return 0, false
	}
	return to.Sub(from), true
}

// request counts one balena API request; code 0 is a request that got no
// answer.
func (m *Metrics) request(route string, code int) {
	c := "error"
	if code > 0 {
		c = strconv.Itoa(code)
	}
	m.mu.Lock()
	m.api[[2]string{route, c}]++
	m.mu.Unlock()
}

// Write implements status.Exposition: the snapshot's gauges, then this
// process's counters and histograms.
func (m *Metrics) Write(w io.Writer, s *status.Snapshot) error {
	e := &expo{w: w}
	e.family("migdb_units", "gauge", "Units in each state (directory) of the database.")
	for _, d := range spool.StateDirs {
		e.sample("migdb_units", labels("state", string(d)), float64(s.Units[d]))
	}
	e.family("migdb_failed_units", "gauge", "Units in fail/, by failure class.")
	for _, c := range devproto.Classes() {
		e.sample("migdb_failed_units", labels("class", string(c)), float64(s.Failed[c]))
	}
	e.family("migdb_units_in_flight", "gauge", "Units claimed by a worker now, by phase and pipeline step.")
	flights := map[[2]string]int{}
	for _, f := range s.InFlight {
		flights[[2]string{f.Phase, f.Step}]++
	}
	for _, k := range sortedPairs(flights) {
		e.sample("migdb_units_in_flight", labels("phase", k[0], "step", k[1]), float64(flights[k]))
	}
	e.family("migdb_rollout_wave", "gauge", "The rollout's highest open wave (0 without waves).")
	e.sample("migdb_rollout_wave", "", float64(s.Rollout.Wave))
	e.family("migdb_rollout_waves", "gauge", "The number of waves of the rollout's plan.")
	e.sample("migdb_rollout_waves", "", float64(s.Rollout.Of))
	e.family("migdb_rollout_wave_limit_units", "gauge", "Units, in submission order, that the open waves let start.")
	e.sample("migdb_rollout_wave_limit_units", "", float64(s.Rollout.Limit))
	e.family("migdb_submitted_units", "gauge", "Units submitted (the submission order).")
	e.sample("migdb_submitted_units", "", float64(s.Rollout.Submitted))
	e.family("migdb_rollout_paused", "gauge", "1 while the rollout is paused (db/PAUSED).")
	paused := 0.0
	if s.Rollout.Paused != nil || s.Rollout.PauseError != "" {
		paused = 1
	}
	e.sample("migdb_rollout_paused", "", paused)
	e.family("migdb_ended_units_per_hour", "gauge", "Units that ended (done/ or fail/) per hour, over the last hour this process watched.")
	e.sample("migdb_ended_units_per_hour", "", s.EndedPerHour)
	e.family("migdb_census_seconds", "gauge", "Time taken to read the database for this snapshot.")
	e.sample("migdb_census_seconds", "", s.Took.Seconds())

	m.mu.Lock()
	defer m.mu.Unlock()
	e.family("migdb_worker_start_time_seconds", "gauge", "When this worker process started (Unix time).")
	e.sample("migdb_worker_start_time_seconds", labels("program", m.program), float64(m.started.Unix()))
	e.family("migdb_moves_total", "counter", "Units this process moved, from one directory to another (a hand-back goes back where it came from).")
	for _, k := range sortedPairs(m.moves) {
		e.sample("migdb_moves_total", labels("from", k[0], "to", k[1]), float64(m.moves[k]))
	}
	e.family("migdb_ssh_errors_total", "counter", "SSH connection and copy errors that decided a unit's outcome, by failure class.")
	for c := range sshClasses {
		m.ssh[string(c)] += 0
	}
	for _, c := range sortedKeys(m.ssh) {
		e.sample("migdb_ssh_errors_total", labels("class", c), float64(m.ssh[c]))
	}
	e.family("migdb_balena_requests_total", "counter", "Requests this process made to the balena API, by route and HTTP status (error: no answer).")
	for _, k := range sortedPairs(m.api) {
		e.sample("migdb_balena_requests_total", labels("route", k[0], "code", k[1]), float64(m.api[k]))
	}
	e.family("migdb_step_duration_seconds", "histogram", "Time units spent in each pipeline step in this process.")
	for _, name := range sortedKeys(m.steps) {
		m.steps[name].write(e, "migdb_step_duration_seconds", "step", name)
	}
	e.family("migdb_time_to_online_seconds", "histogram", "Time from a unit's migration to its device being online in balena, for the units this process moved to done/.")
	m.online.write(e, "migdb_time_to_online_seconds", "", "")
	return e.err
}

// histogram is a Prometheus histogram.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i]++
	h.sum += v
	h.n++
}

func (h *histogram) write(e *expo, name, label, value string) {
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		e.sample(name+"_bucket", labels(label, value, "le", formatFloat(b)), float64(cum))
	}
	e.sample(name+"_bucket", labels(label, value, "le", "+Inf"), float64(h.n))
	e.sample(name+"_sum", labels(label, value), h.sum)
	e.sample(name+"_count", labels(label, value), float64(h.n))
}

// expo writes the text format, keeping the first error.
type expo struct {
	w   io.Writer
	err error
}

func (e *expo) family(name, kind, help string) {
	e.printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func (e *expo) sample(name, labels string, v float64) {
	e.printf("%s%s %s\n", name, labels, formatFloat(v))
}

func (e *expo) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}

// labels renders name/value pairs; pairs with an empty name are left out.
func labels(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "" {
			continue
		}
		parts = append(parts, kv[i]+`="`+escape(kv[i+1])+`"`)
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return escaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedPairs[V any](m map[[2]string]V) [][2]string {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	return keys
}
