package main

import (
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fsnotify/fsnotify"
)

// The rollout with real workers: sshd devices running the stage-1
// stand-in, which report to the fake balena API as online REPORT_DELAY
// seconds after their "reboot", and a real migdb-check-done moving them to
// done/.

// online makes the stand-in devices report online after delay seconds.
func (f *fleet) online(delay string) {
	if err := os.WriteFile(filepath.Join(f.envDir, "REPORT_DELAY"), []byte(delay), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// startCheck runs a migdb-check-done worker on the fleet's database.
func (f *fleet) startCheck(extra ...string) *exec.Cmd {
	c := exec.Command(checkBin, append([]string{"--base", f.base, "--balena-api", f.fake.URL(), "--balena-token", "tok",
		"--check-interval", "1", "--max-age", "600", "--color", "OFF", "--log-to", filepath.Join(f.base, "logs")}, extra...)...)
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + f.base}
	if err := c.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Process.Signal(syscall.SIGTERM); c.Wait() })
	return c
}

// worker starts a migdb-migrate that is stopped at the end of the test.
func (f *fleet) worker(extra ...string) *exec.Cmd {
	c := f.start(append([]string{"--dur", "1"}, extra...)...)
	f.t.Cleanup(func() { c.Process.Signal(syscall.SIGTERM); c.Wait() })
	return c
}

// watch samples where every unit is until stop is closed, calling see
// with each census.
func (f *fleet) watch(see func(map[string][]spool.Dir)) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			default:
			}
			see(f.census())
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() { close(done); <-stopped }
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape reads a worker's /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func started(ds []spool.Dir) bool { return len(ds) > 0 && ds[0] != spool.Units }

// TestSecondWaveWaitsForTheFirstOnline: with --waves 2,100% no unit of the
// second wave is claimed before both units of the first are online in
// balena (in done/), though the first wave's SSH work ended long before.
// The order is the kernel's: one inotify queue watches tmp/ (claims) and
// done/.
func TestSecondWaveWaitsForTheFirstOnline(t *testing.T) {
	f := newFleet(t, 5, "")
	f.online("3")
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, d := range []spool.Dir{spool.Tmp, spool.Done} {
		if err := w.Add(f.db.Path(d)); err != nil {
			t.Fatal(err)
		}
	}
	var order []string // "done dev-00", "claim dev-02", ...
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for ev := range w.Events {
			if ev.Op&(fsnotify.Create|fsnotify.Rename) == 0 {
				continue
			}
			dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
			switch {
			case dir == f.db.Path(spool.Done):
				if id, _, ok := spool.ParseName(base); ok {
					order = append(order, "done "+id)
				}
			case strings.HasPrefix(base, "units~"):
				if id, _, ok := spool.ParseName(strings.TrimPrefix(base, "units~")); ok {
					order = append(order, "claim "+id)
				}
			}
		}
	}()
	migrateHTTP, otherHTTP, checkHTTP := freeAddr(t), freeAddr(t), freeAddr(t)
	f.worker("--waves", "2,100%", "--jobs", "4", "--http", migrateHTTP)
	f.worker("--waves", "2,100%", "--jobs", "4", "--http", otherHTTP)
	f.startCheck("--http", checkHTTP)
	f.waitAll(spool.Done, 5, 3*time.Minute)
	w.Close()
	<-collected
	firstOnline := 0
	for i, e := range order {
		switch e {
		case "done dev-00", "done dev-01":
			firstOnline++
		case "claim dev-02", "claim dev-03", "claim dev-04":
			if firstOnline < 2 {
				t.Fatalf("%s before wave 1 was online: %v", e, order[:i+1])
			}
		}
	}
	if firstOnline != 2 {
		t.Fatalf("events: %v", order)
	}
	// The workers' /metrics: the database as it is (each), and what they
	// did (together: either may have claimed every unit).
	m, other := scrape(t, migrateHTTP), scrape(t, otherHTTP)
	for _, want := range []string{`migdb_units{state="done"} 5`, "migdb_rollout_wave 2", "migdb_rollout_waves 2"} {
		for _, page := range []string{m, other} {
			if !strings.Contains(page, want) {
				t.Errorf("a migdb-migrate's /metrics lacks %s:\n%s", want, page)
			}
		}
	}
	for _, want := range []string{`migdb_balena_requests_total{route="POST /device/register",code="201"}`, `migdb_step_duration_seconds_count{step="run"}`,
		`migdb_step_duration_seconds_count{step="transfer"}`, `migdb_moves_total{from="units",to="process"}`} {
		if !strings.Contains(m+other, want) {
			t.Errorf("neither migdb-migrate's /metrics has %s:\n%s\n%s", want, m, other)
		}
	}
	if c := scrape(t, checkHTTP); !strings.Contains(c, "migdb_time_to_online_seconds_count") || strings.Contains(c, "migdb_time_to_online_seconds_count 0") {
		t.Errorf("migdb-check-done's /metrics has no time to online:\n%s", c)
	}
}

// TestFailingFirstWavePausesTheDatabase: the canary wave has a device the
// pre-flight refuses; two workers share the database; the breaker pauses
// it, neither worker starts another unit (the other unit of the wave,
// in flight, finishes), --stats shows the pause, and --resume lifts it.
func TestFailingFirstWavePausesTheDatabase(t *testing.T) {
	f := newFleet(t, 6, "")
	// dev-00's own environment says there is no room: the pre-flight
	// fails it (the unit is pointed at it before any worker runs).
	full := filepath.Join(f.base, "env-full")
	os.MkdirAll(full, 0o755)
	for _, n := range []string{"balena-migrate", "image.img.gz"} {
		data, _ := os.ReadFile(filepath.Join(f.envDir, n))
		os.WriteFile(filepath.Join(full, n), data, 0o755)
	}
	os.WriteFile(filepath.Join(full, "MODE"), []byte("nospace"), 0o644)
	found, _ := f.db.Find("dev-00")
	data, _ := os.ReadFile(found[0].Path)
	u, _ := unit.Parse(data)
	u.Set("MIG_CFG_DIR", full)
	data, _ = u.Marshal()
	os.WriteFile(found[0].Path, data, 0o600)
	f.online("1")

	args := []string{"--waves", "2,100%", "--max-fail", "10%", "--jobs", "3"}
	w1, w2 := f.worker(args...), f.worker(args...)
	f.startCheck()
	deadline := time.Now().Add(2 * time.Minute)
	for !rollout.Paused(f.db) {
		if time.Now().After(deadline) {
			t.Fatalf("not paused: %v", f.census())
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.waitAll(spool.Done, 1, time.Minute) // dev-01, in flight, finishes
	time.Sleep(3 * time.Second)
	c := f.census()
	for _, id := range []string{"dev-02", "dev-03", "dev-04", "dev-05"} {
		if started(c[id]) {
			t.Errorf("%s started while paused: %v", id, c)
		}
	}
	if len(c["dev-00"]) != 1 || c["dev-00"][0] != spool.Fail {
		t.Fatalf("dev-00: %v", c["dev-00"])
	}
	for i, w := range []*exec.Cmd{w1, w2} {
		if w.ProcessState != nil {
			t.Fatalf("worker %d exited while paused", i)
		}
	}
	p, err := rollout.ReadPause(f.db)
	if err != nil || p.Failed != 1 || p.Classes[devproto.ClassNoSpace] != 1 || strings.Join(p.Units, ",") != "dev-00" {
		t.Fatalf("PAUSED: %+v %v", p, err)
	}
	stats := exec.Command(checkBin, "--base", f.base, "--stats", "--color", "OFF")
	out, err := stats.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PAUSED") || !strings.Contains(string(out), "dev-00") {
		t.Errorf("--stats: %v\n%s", err, out)
	}
	resume := exec.Command(bin, "--base", f.base, "--resume", "--color", "OFF")
	if out, err := resume.CombinedOutput(); err != nil || !strings.Contains(string(out), "resumed") {
		t.Fatalf("--resume: %v\n%s", err, out)
	}
	if rollout.Paused(f.db) {
		t.Fatal("still paused after --resume")
	}
	f.waitAll(spool.Done, 5, 3*time.Minute)
	if rollout.Paused(f.db) {
		t.Error("paused again by the acknowledged failure")
	}
}

// TestMaxPerGroupOne: two workers with three jobs each over two sites of
// three devices; never two units of a site between their claim and their
// end (tmp/ or process/), and every unit ends in done/.
func TestMaxPerGroupOne(t *testing.T) {
	group := func(id string) string {
		var i int
		fmt.Sscanf(id, "dev-%d", &i)
		return fmt.Sprintf("site-%d", i%2)
	}
	f := newFleetWith(t, 6, "", func(i int, u *unit.Unit) { u.Set("MIG_GROUP", group(u.ID())) })
	f.online("1")
	most := map[string]int{}
	stop := f.watch(func(c map[string][]spool.Dir) {
		n := map[string]int{}
		for id, ds := range c {
			for _, d := range ds {
				if d == spool.Tmp || d == spool.Process {
					n[group(id)]++
					break
				}
			}
		}
		for g, k := range n {
			if k > most[g] {
				most[g] = k
			}
			if k > 1 {
				t.Errorf("%d units of %s in flight: %v", k, g, c)
			}
		}
	})
	f.worker("--max-per-group", "1", "--jobs", "3")
	f.worker("--max-per-group", "1", "--jobs", "3")
	f.startCheck()
	f.waitAll(spool.Done, 6, 4*time.Minute)
	stop()
	if most["site-0"] != 1 || most["site-1"] != 1 {
		t.Errorf("most in flight per site: %v", most)
	}
}

// TestKill9DuringRollout kill -9s the workers of a rollout with waves and
// a group limit at random moments and starts them again: at every look no
// unit is in two directories and no site has two units between their
// claim and their end; in the end every unit is online, each registered
// once, and the rollout state files are whole.
func TestKill9DuringRollout(t *testing.T) {
	const units = 8
	group := func(id string) string {
		var i int
		fmt.Sscanf(id, "dev-%d", &i)
		return fmt.Sprintf("site-%d", i%2)
	}
	f := newFleetWith(t, units, "0.3", func(i int, u *unit.Unit) { u.Set("MIG_GROUP", group(u.ID())) })
	f.online("1")
	args := []string{"--waves", "2,100%", "--max-per-group", "1", "--max-fail", "50%", "--jobs", "2", "--dur", "1", "--rescan-interval", "2"}
	var mu sync.Mutex
	var problems []string
	twice := map[string]int{} // samples in a row that saw a unit in two directories
	stop := f.watch(func(c map[string][]spool.Dir) {
		n := map[string]int{}
		for id, ds := range c {
			// A sample lists one directory after another, so a unit
			// moving meanwhile can be seen twice once; a unit that is
			// really in two places is seen so again and again.
			if len(ds) > 1 {
				if twice[id]++; twice[id] == 3 {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s in %v", id, ds))
					mu.Unlock()
				}
			} else {
				twice[id] = 0
			}
			for _, d := range ds {
				if d == spool.Tmp || d == spool.Process {
					n[group(id)]++
					break
				}
			}
		}
		for g, k := range n {
			if k > 1 {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%d units of %s in flight: %v", k, g, c))
				mu.Unlock()
			}
		}
	})
	workers := []*exec.Cmd{f.start(args...), f.start(args...)}
	f.startCheck()
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills := 0
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		time.Sleep(time.Duration(200+r.Intn(600)) * time.Millisecond)
		i := r.Intn(len(workers))
		workers[i].Process.Signal(syscall.SIGKILL)
		workers[i].Wait()
		kills++
		workers[i] = f.start(args...)
	}
	t.Cleanup(func() {
		for _, w := range workers {
			w.Process.Signal(syscall.SIGTERM)
			w.Wait()
		}
	})
	f.waitAll(spool.Done, units, 4*time.Minute)
	stop()
	mu.Lock()
	for _, p := range problems {
		t.Error(p)
	}
	mu.Unlock()
	if n := len(f.fake.Devices()); n != units {
		t.Errorf("%d devices registered for %d units", n, units)
	}
	st, err := rollout.ReadState(f.db)
	if err != nil || st.Wave != 2 || st.Waves != "2,100%" {
		t.Errorf("db/ROLLOUT after the kills: %+v %v", st, err)
	}
	if rollout.Paused(f.db) {
		t.Error("paused, with no failure")
	}
	for _, g := range []string{"site-0", "site-1"} {
		data, err := os.ReadFile(filepath.Join(f.db.Root(), "groups", g))
		if err != nil {
			t.Errorf("group %s: %v", g, err)
		}
		t.Logf("db/groups/%s at the end: %q", g, data)
	}
	t.Logf("%d kill -9s during the rollout", kills)
}
