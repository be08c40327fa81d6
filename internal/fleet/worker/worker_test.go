package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/rs/zerolog"
)

type recorder struct {
	mu      sync.Mutex
	claimed map[string]time.Time
	ch      chan string
}

func newRecorder() *recorder {
	return &recorder{claimed: map[string]time.Time{}, ch: make(chan string, 1000)}
}

// handle moves each unit to process/, recording when it was claimed.
func (r *recorder) handle(_ context.Context, j *Job) Outcome {
	r.mu.Lock()
	r.claimed[j.Unit.ID()] = time.Now()
	r.mu.Unlock()
	r.ch <- j.Unit.ID()
	return Outcome{To: spool.Process, Unit: j.Unit, Msg: "recorded"}
}

func start(t *testing.T, l *Loop) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx, context.Background()) }()
	// Let the watcher come up before the test acts.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, _ := l.DB.LiveWorkers(); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("worker did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return func() error { cancel(); return <-errc }
}

func add(t *testing.T, db *spool.DB, id string, due time.Time) {
	t.Helper()
	u, _ := unit.New(id, time.Now())
	if !due.IsZero() {
		u.SetDue(due)
	}
	if _, err := db.Add(u); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, r *recorder, id string, within time.Duration) time.Time {
	t.Helper()
	select {
	case got := <-r.ch:
		if got != id {
			t.Fatalf("claimed %s, want %s", got, id)
		}
	case <-time.After(within):
		t.Fatalf("%s not claimed within %v", id, within)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.claimed[id]
}

func newLoop(t *testing.T, r *recorder) *Loop {
	db, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A long rescan proves wake-ups come from fsnotify and the due timer.
	return &Loop{DB: db, Input: spool.Units, Name: "test", Jobs: 2, Rescan: time.Hour, Log: zerolog.New(zerolog.NewTestWriter(t)), Handle: r.handle}
}

func TestWakesOnNewUnitAndOnDueTime(t *testing.T) {
	r := newRecorder()
	l := newLoop(t, r)
	stop := start(t, l)
	defer stop()
	t0 := time.Now()
	add(t, l.DB, "fresh", time.Time{})
	if lat := wait(t, r, "fresh", 2*time.Second).Sub(t0); lat > 500*time.Millisecond {
		t.Errorf("fresh unit claimed after %v", lat)
	}
	due := time.Now().Add(2 * time.Second).Truncate(time.Second)
	add(t, l.DB, "later", due)
	select {
	case id := <-r.ch:
		t.Fatalf("%s claimed before its due time", id)
	case <-time.After(time.Until(due) - 100*time.Millisecond):
	}
	at := wait(t, r, "later", 3*time.Second)
	if at.Before(due) || at.Sub(due) > 500*time.Millisecond {
		t.Errorf("due %v, claimed %v", due, at)
	}
}

// Units only the start-up listing can find (they were there before the
// worker, so no event names them) are claimed at once, whether the listing
// finds them in its last step or in an earlier one (the due timer is an
// hour away), and the loop still wakes for arrivals afterwards.
func TestListingFindsUnitsAndYieldsToArrivals(t *testing.T) {
	for _, waiting := range []int{0, 3000} {
		t.Run(fmt.Sprintf("waiting=%d", waiting), func(t *testing.T) {
			r := newRecorder()
			l := newLoop(t, r)
			for i := 0; i < waiting; i++ {
				u, _ := unit.New(fmt.Sprintf("w%05d", i), time.Now())
				u.SetDue(time.Now().Add(time.Hour))
				data, _ := u.Marshal()
				os.WriteFile(l.DB.Path(spool.Units, spool.FileName(spool.Units, u.ID(), "t")), data, 0o600)
			}
			add(t, l.DB, "early", time.Time{})
			stop := start(t, l)
			defer stop()
			wait(t, r, "early", 20*time.Second)
			add(t, l.DB, "late", time.Time{})
			wait(t, r, "late", 20*time.Second)
		})
	}
}

func TestStopFileEndsLoop(t *testing.T) {
	r := newRecorder()
	l := newLoop(t, r)
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx, ctx) }()
	time.Sleep(50 * time.Millisecond)
	if err := l.DB.RequestStop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("worker ignored the stop file")
	}
	if n, _ := l.DB.LiveWorkers(); n != 0 {
		t.Fatalf("%d workers still registered", n)
	}
}

func TestOnceHandlesDueAndLeavesTheRest(t *testing.T) {
	r := newRecorder()
	l := newLoop(t, r)
	l.Once = true
	for _, id := range []string{"a", "b", "c"} {
		add(t, l.DB, id, time.Time{})
	}
	add(t, l.DB, "future", time.Now().Add(time.Hour))
	ctx := context.Background()
	if err := l.Run(ctx, ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for id := range r.claimed {
		got = append(got, id)
	}
	sort.Strings(got)
	if len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Fatalf("claimed %v", got)
	}
	left, _ := filepath.Glob(l.DB.Path(spool.Units, "unit-future-*"))
	if len(left) != 1 {
		t.Fatal("the future unit moved")
	}
}

// A run counts the units it ended and those it moved to fail/, so that the
// program can report a --once run in which units failed.
func TestRunCountsFailedUnits(t *testing.T) {
	failSome := func(_ context.Context, j *Job) Outcome {
		if strings.HasPrefix(j.Unit.ID(), "bad") {
			return Outcome{To: spool.Fail, Unit: j.Unit, Msg: "failed"}
		}
		if strings.HasPrefix(j.Unit.ID(), "back") {
			j.Unit.SetDue(time.Now().Add(time.Hour))
			return Outcome{To: spool.Units, Unit: j.Unit, Msg: "later"}
		}
		return Outcome{To: spool.Process, Unit: j.Unit, Msg: "migrated"}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		ids             []string
		handled, failed int
	}{
		{[]string{"ok-1", "bad-1", "ok-2", "back-1"}, 4, 1},
		{[]string{"ok-1", "ok-2"}, 2, 0},
		{nil, 0, 0},
	} {
		l := newLoop(t, newRecorder())
		l.Handle, l.Once = failSome, true
		for _, id := range tc.ids {
			add(t, l.DB, id, time.Time{})
		}
		if err := l.Run(ctx, ctx); err != nil {
			t.Fatalf("%v: %v", tc.ids, err)
		}
		if handled, failed := l.Ended(); handled != tc.handled || failed != tc.failed {
			t.Errorf("%v: Ended() = %d handled, %d failed; want %d, %d", tc.ids, handled, failed, tc.handled, tc.failed)
		}
	}
}

func TestUnreadableUnitGoesToFailUnchanged(t *testing.T) {
	r := newRecorder()
	l := newLoop(t, r)
	l.Once = true
	p := l.DB.Path(spool.Units, "unit-broken-abc123")
	os.WriteFile(p, []byte("UNIT_ID=\"unterminated\n"), 0o600)
	ctx := context.Background()
	if err := l.Run(ctx, ctx); err != nil {
		t.Fatal(err)
	}
	if handled, failed := l.Ended(); handled != 1 || failed != 1 {
		t.Errorf("Ended() = %d handled, %d failed; want 1, 1", handled, failed)
	}
	data, err := os.ReadFile(l.DB.Path(spool.Fail, "fail-broken-abc123"))
	if err != nil || string(data) != "UNIT_ID=\"unterminated\n" {
		t.Fatalf("fail file: %q %v", data, err)
	}
}

func TestPanickingHandlerHandsUnitBack(t *testing.T) {
	l := newLoop(t, newRecorder())
	l.Handle = func(context.Context, *Job) Outcome {
		l.DB.RequestStop() // so the loop ends instead of re-claiming
		panic("boom")
	}
	add(t, l.DB, "p", time.Time{})
	ctx := context.Background()
	if err := l.Run(ctx, ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(l.DB.Path(spool.Units, "unit-p-*")); len(m) != 1 {
		t.Fatalf("unit not handed back: %v", m)
	}
}

func TestHandedBackUnitRestsInsteadOfSpinning(t *testing.T) {
	r := newRecorder()
	l := newLoop(t, r)
	var calls atomic.Int32
	l.Handle = func(context.Context, *Job) Outcome {
		calls.Add(1)
		return HandBack("the unit log is unavailable")
	}
	stop := start(t, l)
	add(t, l.DB, "sticky", time.Time{})
	time.Sleep(1500 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a handed-back unit was taken %d times in 1.5 s", n)
	}
	if found, _ := l.DB.Find("sticky"); len(found) != 1 || found[0].Dir != spool.Units {
		t.Fatalf("unit found in %v", found)
	}
}

func TestStopOutcomeEndsTheWorker(t *testing.T) {
	r := newRecorder()
	l := newLoop(t, r)
	revoked := errors.New("balena rejected the token")
	l.Handle = func(context.Context, *Job) Outcome { return Outcome{Stop: revoked, Msg: "token revoked"} }
	for _, id := range []string{"a", "b", "c"} {
		add(t, l.DB, id, time.Time{})
	}
	l.Jobs = 1
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx, ctx) }()
	select {
	case err := <-errc:
		if !errors.Is(err, revoked) {
			t.Fatalf("Run = %v, want the handler's stop error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the worker did not stop")
	}
	for _, id := range []string{"a", "b", "c"} {
		if found, _ := l.DB.Find(id); len(found) != 1 || found[0].Dir != spool.Units {
			t.Errorf("%s found in %v", id, found)
		}
	}
}

// TestUnitLogPathIsAbsolute: a worker started in the database's directory
// with --base . records a log path another worker, started elsewhere, finds.
func TestUnitLogPathIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	db, err := spool.Open(".")
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	l := &Loop{DB: db, Input: spool.Units, Name: "test", Jobs: 1, Once: true, Rescan: time.Hour, Log: zerolog.New(zerolog.NewTestWriter(t)), Handle: r.handle}
	add(t, db, "rel", time.Time{})
	if err := l.Run(context.Background(), context.Background()); err != nil {
		t.Fatal(err)
	}
	found, _ := db.Find("rel")
	data, _ := os.ReadFile(found[0].Path)
	u, _ := unit.Parse(data)
	if p := u.Get(unit.FieldOutputLog); !filepath.IsAbs(p) || !strings.HasPrefix(p, dir) {
		t.Fatalf("UNIT_OUTPUT_LOG %q is not an absolute path under %s", p, dir)
	}
}

// TestFullDatabaseDiskStopsTheWorker runs a worker on a real, tiny tmpfs
// filled to the last byte: saving a unit meets ENOSPC, and the worker
// stops with a message saying so instead of handing the unit back and
// taking it again for ever.
func TestFullDatabaseDiskStopsTheWorker(t *testing.T) {
	testenv.NeedRoot(t, "mounts a tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	db, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	add(t, db, "full", time.Time{})
	// Fill what is left, so the next write fails.
	f, _ := os.Create(filepath.Join(dir, "filler"))
	f.Write(make([]byte, 1<<20))
	f.Close()
	calls := 0
	l := &Loop{DB: db, Input: spool.Units, Name: "test", Jobs: 1, Rescan: time.Hour, Log: zerolog.New(zerolog.NewTestWriter(t)),
		Handle: func(_ context.Context, j *Job) Outcome {
			calls++
			j.Unit.Set("STEP", strings.Repeat("x", 4096))
			return Outcome{To: spool.Process, Unit: j.Unit, Msg: "done"}
		}}
	errc := make(chan error, 1)
	go func() { errc <- l.Run(context.Background(), context.Background()) }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "database disk is full") {
			t.Fatalf("Run = %v, want the full-disk stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker kept going on a full disk")
	}
	if calls > 1 {
		t.Errorf("the unit was handled %d times", calls)
	}
	if found, _ := db.Find("full"); len(found) != 1 {
		t.Errorf("unit found in %v", found)
	}
}
