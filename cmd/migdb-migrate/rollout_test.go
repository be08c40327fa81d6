package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
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
func (f *fleet) startCheck() *exec.Cmd {
	c := exec.Command(checkBin, "--base", f.base, "--balena-api", f.fake.URL(), "--balena-token", "tok",
		"--check-interval", "1", "--max-age", "600", "--color", "OFF", "--log-to", filepath.Join(f.base, "logs"))
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

func started(ds []spool.Dir) bool { return len(ds) > 0 && ds[0] != spool.Units }

// TestSecondWaveWaitsForTheFirstOnline: with --waves 2,100% no unit of the
// second wave leaves units/ before both units of the first are online in
// balena (in done/), though the first wave's SSH work ended long before.
func TestSecondWaveWaitsForTheFirstOnline(t *testing.T) {
	f := newFleet(t, 5, "")
	f.online("3")
	var firstOnline, secondStarted time.Time
	stop := f.watch(func(c map[string][]spool.Dir) {
		if firstOnline.IsZero() && len(c["dev-00"]) == 1 && c["dev-00"][0] == spool.Done && len(c["dev-01"]) == 1 && c["dev-01"][0] == spool.Done {
			firstOnline = time.Now()
		}
		for _, id := range []string{"dev-02", "dev-03", "dev-04"} {
			if secondStarted.IsZero() && started(c[id]) {
				secondStarted = time.Now()
				if firstOnline.IsZero() {
					t.Errorf("%s of wave 2 started (%v) before wave 1 was online: %v", id, c[id], c)
				}
			}
		}
	})
	f.worker("--waves", "2,100%", "--jobs", "4")
	f.worker("--waves", "2,100%", "--jobs", "4")
	f.startCheck()
	f.waitAll(spool.Done, 5, 3*time.Minute)
	stop()
	if firstOnline.IsZero() || secondStarted.Before(firstOnline) {
		t.Fatalf("wave 1 online %v, wave 2 started %v", firstOnline, secondStarted)
	}
	st, err := rollout.ReadState(f.db)
	if err != nil || st.Wave != 2 {
		t.Errorf("db/ROLLOUT: %+v %v", st, err)
	}
	t.Logf("wave 2 started %v after wave 1 was online", secondStarted.Sub(firstOnline).Round(time.Millisecond))
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
