package rollout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/rs/zerolog"
)

// harness runs a worker loop with a rollout gate over a real database; its
// handler moves units where the test says (process/ by default), and the
// test plays migdb-check-done by moving units on to done/ or fail/.
type harness struct {
	t      *testing.T
	db     *spool.DB
	gate   *rollout.Gate
	claims chan string

	// handler, when set, replaces the test's own (a real pipeline).
	handler worker.Handler
	dueOf   func(*unit.Unit) time.Time

	mu      sync.Mutex
	fail    map[string]devproto.Class // units the handler fails
	handBk  map[string]bool           // units the handler hands back
	clock   time.Time                 // zero: the real clock
	stopped bool
}

func newHarness(t *testing.T) *harness {
	db, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, db: db, claims: make(chan string, 100), fail: map[string]devproto.Class{}, handBk: map[string]bool{}}
}

// add submits units with the given settings (MIG_GROUP, ...).
func (h *harness) add(fields map[string]string, ids ...string) {
	h.t.Helper()
	for _, id := range ids {
		u, _ := unit.New(id, time.Now())
		for k, v := range fields {
			u.Set(k, v)
		}
		if _, err := h.db.Add(u); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clock.IsZero() {
		return time.Now()
	}
	return h.clock
}

func (h *harness) handle(_ context.Context, j *worker.Job) worker.Outcome {
	id := j.Unit.ID()
	j.Step("probe")
	h.mu.Lock()
	class, fails := h.fail[id]
	back := h.handBk[id]
	delete(h.handBk, id)
	h.mu.Unlock()
	h.claims <- id
	switch {
	case fails:
		j.Unit.SetFail(class, "told to fail", time.Now())
		return worker.Outcome{To: spool.Fail, Unit: j.Unit, Class: class, Msg: "failed"}
	case back:
		return worker.Outcome{To: spool.Units, Unit: j.Unit, Msg: "back"}
	}
	j.Unit.SetStatus(unit.StatusMigrated, time.Now())
	return worker.Outcome{To: spool.Process, Unit: j.Unit, Msg: "migrated"}
}

// start runs the loop with gate g (its DB, Log and Rules are filled in).
func (h *harness) start(g *rollout.Gate) {
	h.t.Helper()
	g.DB, g.Real, g.Log = h.db, true, zerolog.New(zerolog.NewTestWriter(h.t))
	if g.Rules == nil {
		g.Rules = func(u *unit.Unit) rollout.UnitRules {
			return rollout.UnitRules{Group: u.Get("MIG_GROUP"), Window: u.Get("MIG_WINDOW"), Zone: u.Get("MIG_TZ")}
		}
	}
	if g.Rescan == 0 {
		g.Rescan = time.Hour
	}
	if err := g.Open(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.gate = g
	handle := h.handle
	if h.handler != nil {
		handle = h.handler
	}
	l := &worker.Loop{DB: h.db, Input: spool.Units, Name: "test", Jobs: 4, Rescan: g.Rescan,
		Log: zerolog.New(zerolog.NewTestWriter(h.t)), Handle: handle, DueOf: h.dueOf, Gate: g, Now: h.now}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx, context.Background()) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			h.t.Errorf("loop: %v", err)
		}
	})
}

// expect waits for exactly the units ids to be claimed, in any order, and
// then for quiet: no other claim for a while.
func (h *harness) expect(ids ...string) {
	h.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case id := <-h.claims:
			if !want[id] {
				h.t.Fatalf("%s claimed; waiting for %v", id, keys(want))
			}
			delete(want, id)
		case <-deadline:
			h.t.Fatalf("not claimed: %v", keys(want))
		}
	}
	h.quiet(400 * time.Millisecond)
}

func (h *harness) quiet(d time.Duration) {
	h.t.Helper()
	select {
	case id := <-h.claims:
		h.t.Fatalf("%s claimed, but nothing should be", id)
	case <-time.After(d):
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// where is the directory unit id is in (waiting for a move in flight).
func (h *harness) where(id string) spool.Dir {
	h.t.Helper()
	found, err := h.db.Find(id)
	if err != nil || len(found) != 1 {
		h.t.Fatalf("%s: %v %v", id, found, err)
	}
	return found[0].Dir
}

// end plays migdb-check-done: the unit goes from process/ to done/.
func (h *harness) end(id string) {
	h.t.Helper()
	h.waitIn(id, spool.Process)
	found, _ := h.db.Find(id)
	dst := h.db.Path(spool.Done, filepath.Base(found[0].Path))
	if err := os.Rename(found[0].Path, dst); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitIn(id string, d spool.Dir) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		found, _ := h.db.Find(id)
		if len(found) == 1 && found[0].Dir == d {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s is in %v, not %s", id, found, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ids(prefix string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s-%02d", prefix, i))
	}
	return out
}

func TestWavesStartOnlyWhenEveryEarlierUnitEnded(t *testing.T) {
	h := newHarness(t)
	u := ids("gw", 6)
	h.add(nil, u...)
	plan, _ := rollout.ParseWaves("1,3,100%")
	h.mu.Lock()
	h.fail[u[2]] = devproto.ClassStage1
	h.mu.Unlock()
	h.start(&rollout.Gate{Plan: plan})
	h.expect(u[0]) // the canary alone
	h.end(u[0])
	h.expect(u[1], u[2]) // wave 2; u[2] fails at once
	h.waitIn(u[2], spool.Fail)
	h.quiet(500 * time.Millisecond) // u[1] has not ended
	h.end(u[1])
	h.expect(u[3], u[4], u[5])
	st, err := rollout.ReadState(h.db)
	if err != nil || st.Wave != 3 || st.Waves != "1,3,100%" {
		t.Errorf("state %+v %v", st, err)
	}
}

func TestBreakerPausesAndResumeLifts(t *testing.T) {
	h := newHarness(t)
	u := ids("gw", 5)
	h.add(nil, u...)
	plan, _ := rollout.ParseWaves("2,100%")
	b, _ := rollout.ParseMaxFail("10%,stage2=0")
	h.mu.Lock()
	h.fail[u[0]] = devproto.ClassNoSpace
	h.mu.Unlock()
	h.start(&rollout.Gate{Plan: plan, Breaker: &b})
	h.expect(u[0], u[1])
	// u[0] failing is 1 of 1 ended (100%): paused at once. u[1], in
	// flight, finishes; wave 1 has then ended, but the rollout is paused,
	// so wave 2 does not start.
	h.end(u[1])
	deadline := time.Now().Add(5 * time.Second)
	for !rollout.Paused(h.db) {
		if time.Now().After(deadline) {
			t.Fatal("not paused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.quiet(time.Second)
	p, err := rollout.ReadPause(h.db)
	if err != nil || p == nil || p.Failed != 1 || p.Ended < 1 || p.Classes[devproto.ClassNoSpace] != 1 ||
		strings.Join(p.Units, ",") != u[0] || !strings.Contains(p.Reason, "10%") {
		t.Fatalf("pause %+v %v", p, err)
	}
	lifted, err := rollout.Resume(context.Background(), h.db, time.Now())
	if err != nil || lifted == nil {
		t.Fatalf("resume: %v %v", lifted, err)
	}
	h.expect(u[2], u[3], u[4])
	// The failure was acknowledged: u[2..4] ending well does not pause.
	for _, id := range u[2:] {
		h.end(id)
	}
	time.Sleep(300 * time.Millisecond)
	if rollout.Paused(h.db) {
		t.Error("paused again by an acknowledged failure")
	}
	if again, err := rollout.Resume(context.Background(), h.db, time.Now()); again != nil || err != nil {
		t.Errorf("resume without a pause: %v %v", again, err)
	}
}

func TestBreakerPerClassStopsAtFirst(t *testing.T) {
	h := newHarness(t)
	u := ids("gw", 4)
	h.add(nil, u...)
	b, _ := rollout.ParseMaxFail("stage2=0")
	h.start(&rollout.Gate{Breaker: &b})
	h.expect(u...)
	// check-done fails one as stage2 (the file written as it would).
	h.waitIn(u[3], spool.Process)
	found, _ := h.db.Find(u[3])
	data, _ := os.ReadFile(found[0].Path)
	un, _ := unit.Parse(data)
	un.SetFail(devproto.ClassStage2, "stage 2 refused", time.Now())
	data, _ = un.Marshal()
	_, tag, _ := spool.ParseName(filepath.Base(found[0].Path))
	os.WriteFile(found[0].Path, data, 0o600)
	if err := os.Rename(found[0].Path, h.db.Path(spool.Fail, spool.FileName(spool.Fail, u[3], tag))); err != nil {
		t.Fatal(err)
	}
	h.add(nil, "late")
	deadline := time.Now().Add(5 * time.Second)
	for !rollout.Paused(h.db) {
		if time.Now().After(deadline) {
			t.Fatal("a stage2 failure did not pause with stage2=0")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.quiet(500 * time.Millisecond)
	if h.where("late") != spool.Units {
		t.Error("a unit started while paused")
	}
}

func TestGroupLimit(t *testing.T) {
	h := newHarness(t)
	a := ids("a", 3)
	h.add(map[string]string{"MIG_GROUP": "site-a"}, a...)
	h.add(map[string]string{"MIG_GROUP": "site-b"}, "b-00")
	h.add(nil, "loose")
	h.mu.Lock()
	h.handBk[a[0]], h.handBk[a[1]], h.handBk[a[2]] = true, true, true // the first of site-a it gets comes back
	h.mu.Unlock()
	h.start(&rollout.Gate{MaxPerGroup: 1})
	first := h.nextOf(a)
	// Handed back: its line is given back, so another of site-a goes.
	h.mu.Lock()
	h.handBk = map[string]bool{}
	h.mu.Unlock()
	second := h.nextOf(a)
	inFlight := func() []string {
		var out []string
		for _, id := range a {
			if d := h.where(id); d == spool.Tmp || d == spool.Process {
				out = append(out, id)
			}
		}
		return out
	}
	h.quietOf(a, 500*time.Millisecond)
	if got := inFlight(); len(got) != 1 || got[0] != second {
		t.Fatalf("site-a in flight: %v (first %s came back, second %s)", got, first, second)
	}
	h.end(second)
	third := h.nextOf(a)
	h.quietOf(a, 300*time.Millisecond)
	if got := inFlight(); len(got) != 1 || got[0] != third {
		t.Fatalf("site-a in flight: %v", got)
	}
	if h.where("b-00") != spool.Process || h.where("loose") != spool.Process {
		t.Error("units of another group or none were held")
	}
}

// quietOf fails on a claim of one of ids within d (others are let by).
func (h *harness) quietOf(ids []string, d time.Duration) {
	h.t.Helper()
	end := time.After(d)
	for {
		select {
		case id := <-h.claims:
			for _, x := range ids {
				if x == id {
					h.t.Fatalf("%s claimed, but nothing of %v should be", id, ids)
				}
			}
		case <-end:
			return
		}
	}
}

// nextOf waits for the next claim of one of ids (other claims are let
// by) and returns it.
func (h *harness) nextOf(ids []string) string {
	h.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case id := <-h.claims:
			for _, x := range ids {
				if x == id {
					return id
				}
			}
		case <-deadline:
			h.t.Fatalf("none of %v claimed", ids)
		}
	}
}

func TestWindowWithFakeClock(t *testing.T) {
	h := newHarness(t)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	h.clock = time.Date(2026, 6, 1, 21, 59, 0, 0, berlin)
	h.add(map[string]string{"MIG_WINDOW": "22:00-05:00", "MIG_TZ": "Europe/Berlin"}, "night")
	h.add(map[string]string{"MIG_WINDOW": "01:00-02:00", "MIG_TZ": "UTC+02:00"}, "early")
	h.add(nil, "any")
	h.start(&rollout.Gate{})
	h.expect("any")
	h.set(time.Date(2026, 6, 1, 22, 0, 30, 0, berlin))
	h.poke()
	h.expect("night")
	h.set(time.Date(2026, 6, 2, 0, 59, 0, 0, berlin)) // 00:59 at UTC+02:00 too
	h.poke()
	h.quiet(300 * time.Millisecond)
	h.set(time.Date(2026, 6, 2, 1, 0, 0, 0, berlin))
	h.poke()
	h.expect("early")
	// After the night window a new unit of it waits for the next night.
	h.set(time.Date(2026, 6, 2, 5, 0, 0, 0, berlin))
	h.add(map[string]string{"MIG_WINDOW": "22:00-05:00", "MIG_TZ": "Europe/Berlin"}, "morning")
	h.quiet(400 * time.Millisecond)
	if h.where("morning") != spool.Units {
		t.Error("a unit started outside its window")
	}
}

func (h *harness) set(t time.Time) {
	h.mu.Lock()
	h.clock = t
	h.mu.Unlock()
}

// poke wakes the loop, as its timer would at the window's opening: a file
// event in units/ for a name that is no unit.
func (h *harness) poke() {
	if err := os.WriteFile(h.db.Path(spool.Units, "poke"), nil, 0o600); err != nil {
		h.t.Fatal(err)
	}
}
