// Command dbbench is the Go half of scripts/bench-db: it builds a large
// database and measures, on the programs in a given directory, what a
// large database costs: claim latency, idle CPU and memory of a worker,
// migdb-add-unit per call, and --stats.
//
//	dbbench fill  BASE N           N migrated units in process/, due in a week
//	dbbench claim BIN BASE SAMPLES IDLE [FLAG...]   a migdb-check-done worker on BASE
//	dbbench add   BIN BASE CALLS   time migdb-add-unit calls
//	dbbench stats BIN BASE RUNS    time migdb-check-done --stats
//	dbbench fill-units, migrate, held   the rollout's figures (rollout.go)
//
// Results are printed as "name=value" words, for the script to compare.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fsnotify/fsnotify"
)

func main() {
	err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: dbbench fill|claim|add|stats ...")
	}
	n := func(i int) int {
		v, _ := strconv.Atoi(args[i])
		return v
	}
	switch {
	case args[0] == "fill" && len(args) == 3:
		return fill(args[1], n(2))
	case args[0] == "claim" && len(args) >= 5:
		idle, err := time.ParseDuration(args[4])
		if err != nil {
			return err
		}
		return claim(args[1], args[2], n(3), idle, args[5:])
	case args[0] == "add" && len(args) == 4:
		return add(args[1], args[2], n(3))
	case args[0] == "stats" && len(args) == 4:
		return stats(args[1], args[2], n(3))
	case args[0] == "fill-units" && (len(args) == 5 || len(args) == 6):
		return fillUnits(args[1], n(2), n(3), n(4), len(args) == 6 && args[5] == "due")
	case args[0] == "migrate" && len(args) >= 6:
		idle, err := time.ParseDuration(args[4])
		if err != nil {
			return err
		}
		return migrateClaims(args[1], args[2], n(3), idle, n(5), args[6:])
	case args[0] == "held" && len(args) >= 5:
		idle, err := time.ParseDuration(args[3])
		if err != nil {
			return err
		}
		return heldIdle(args[1], args[2], idle, n(4), args[5:])
	}
	return fmt.Errorf("bad arguments %q", args)
}

// migrated returns a unit as migdb-check-done finds it in process/.
func migrated(id string, due time.Time) ([]byte, error) {
	now := time.Now()
	u, err := unit.New(id, now.Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	u.SetStatus(unit.StatusMigrated, now.Add(-time.Minute))
	b := make([]byte, 16)
	rand.Read(b)
	u.Set(unit.FieldDeviceID, hex.EncodeToString(b))
	u.SetDue(due)
	return u.Marshal()
}

// fill writes n units straight into process/ (no fsync: this is set-up),
// each due at its own time in about a week.
func fill(base string, n int) error {
	db, err := spool.Open(base)
	if err != nil {
		return err
	}
	week := time.Now().Add(7 * 24 * time.Hour)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("wait-%06d", i)
		data, err := migrated(id, week.Add(time.Duration(i)*time.Second))
		if err != nil {
			return err
		}
		p := db.Path(spool.Process, spool.FileName(spool.Process, id, fmt.Sprintf("t%07d", i)))
		if err := os.WriteFile(p, data, 0o640); err != nil {
			return err
		}
	}
	return nil
}

// claim starts a migdb-check-done worker on base (the fake balena API's
// URL is in $BENCH_API), waits until it has listed the database, then
// drops due units into process/ one at a time and times each until it
// leaves process/ (claimed). Then it measures the idle worker's CPU over
// idle and its memory. flags go to the worker.
func claim(bin, base string, samples int, idle time.Duration, flags []string) error {
	db, w, err := watch(base, spool.Process)
	if err != nil {
		return err
	}
	defer w.Close()
	logs := filepath.Join(base, "logs")
	os.MkdirAll(logs, 0o700)
	cmd := exec.Command(filepath.Join(bin, "migdb-check-done"), append([]string{"--base", base, "--balena-api", os.Getenv("BENCH_API"),
		"--check-interval", "3600", "--max-age", "9999999", "--log-to", logs, "--color", "OFF"}, flags...)...)
	cmd.Env = append(os.Environ(), "MIG_BALENA_TOKEN=fake-balena-token")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	words, err := measureClaims(cmd.Process.Pid, start, samples, idle, func(i int, limit time.Duration) (time.Duration, error) {
		return probe(db, w, fmt.Sprintf("probe-%04d", i), limit)
	})
	if err != nil {
		return err
	}
	fmt.Println(words)
	return nil
}

// watch opens the database at base and watches directory d of it.
func watch(base string, d spool.Dir) (*spool.DB, *fsnotify.Watcher, error) {
	db, err := spool.Open(base)
	if err != nil {
		return nil, nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Add(db.Path(d)); err != nil {
		w.Close()
		return nil, nil, err
	}
	return db, w, nil
}

// measureClaims times samples probes of the worker pid, after a first one
// that shows it is up: its start-up listing of the database (reading
// every file) may still be under way, in steps between claims, so the
// first samples measure claims during it. Then it measures the idle
// worker's CPU over idle and its memory, and returns the result words.
func measureClaims(pid int, start time.Time, samples int, idle time.Duration, probe func(i int, limit time.Duration) (time.Duration, error)) (string, error) {
	if _, err := probe(9999, 5*time.Minute); err != nil {
		return "", fmt.Errorf("worker did not claim its first unit: %w", err)
	}
	firstClaim := time.Since(start)
	var lat []time.Duration
	for i := 0; i < samples; i++ {
		time.Sleep(time.Duration(50+i%7*23) * time.Millisecond)
		d, err := probe(i, 30*time.Second)
		if err != nil {
			return "", err
		}
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	// Let the probes' handlers finish before measuring idleness.
	time.Sleep(3 * time.Second)
	cpu, rss, hwm, err := idleCost(pid, idle)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("first_claim_s=%.2f claim_p50_ms=%.2f claim_p99_ms=%.2f claim_max_ms=%.2f idle_cpu_pct=%.3f rss_mib=%.1f peak_rss_mib=%.1f",
		firstClaim.Seconds(), ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1]), cpu, float64(rss)/1024, float64(hwm)/1024), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// probe drops a due unit into process/ and waits until the worker moves it
// out, returning how long that took.
func probe(db *spool.DB, w *fsnotify.Watcher, id string, limit time.Duration) (time.Duration, error) {
	data, err := migrated(id, time.Now().Add(-time.Second))
	if err != nil {
		return 0, err
	}
	return drop(db, w, spool.Process, id, data, limit)
}

// dropDue drops a fresh unit with fields into directory d, in the
// submission order first, and waits until the worker moves it out.
func dropDue(db *spool.DB, w *fsnotify.Watcher, id string, fields map[string]string, d spool.Dir, limit time.Duration) (time.Duration, error) {
	u, err := unit.New(id, time.Now().Add(-time.Minute))
	if err != nil {
		return 0, err
	}
	for k, v := range fields {
		u.Set(k, v)
	}
	data, err := u.Marshal()
	if err != nil {
		return 0, err
	}
	if err := db.EnsureOrdered([]string{id}); err != nil {
		return 0, err
	}
	return drop(db, w, d, id, data, limit)
}

// drop renames a unit file into directory d and waits until the worker
// moves it out, returning how long that took.
func drop(db *spool.DB, w *fsnotify.Watcher, d spool.Dir, id string, data []byte, limit time.Duration) (time.Duration, error) {
	tmp := db.Path(spool.Tmp, ".bench-"+id)
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return 0, err
	}
	dst := db.Path(d, spool.FileName(d, id, "bench"))
	t0 := time.Now()
	if err := os.Rename(tmp, dst); err != nil {
		return 0, err
	}
	deadline := time.After(limit)
	for {
		select {
		case ev := <-w.Events:
			if ev.Name == dst && ev.Op&(fsnotify.Rename|fsnotify.Remove) != 0 {
				return time.Since(t0), nil
			}
		case err := <-w.Errors:
			return 0, err
		case <-deadline:
			return 0, fmt.Errorf("unit %s not claimed within %v", id, limit)
		}
	}
}

// cpuTicks is the user+system time of a process in clock ticks.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st, nil
}

// memory is a process's resident and peak resident size in KiB.
func memory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, sc.Err()
}

// add times calls of migdb-add-unit, each adding a new unit. The first
// call is reported apart: on a database made by an older version it
// builds the id index once.
func add(bin, base string, calls int) error {
	var lat []time.Duration
	for i := 0; i < calls; i++ {
		t0 := time.Now()
		out, err := exec.Command(filepath.Join(bin, "migdb-add-unit"), "--base", base, "--color", "OFF",
			"--host", "192.0.2.1", "-u", "root", fmt.Sprintf("added-%04d", i)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("migdb-add-unit: %v: %s", err, out)
		}
		lat = append(lat, time.Since(t0))
	}
	first := lat[0]
	rest := lat[1:]
	sort.Slice(rest, func(i, j int) bool { return rest[i] < rest[j] })
	fmt.Printf("add_first_ms=%.1f add_p50_ms=%.1f add_max_ms=%.1f\n", ms(first), ms(rest[len(rest)/2]), ms(rest[len(rest)-1]))
	return nil
}

// stats times migdb-check-done --stats.
func stats(bin, base string, runs int) error {
	var lat []time.Duration
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		out, err := exec.Command(filepath.Join(bin, "migdb-check-done"), "--base", base, "--color", "OFF", "--stats").CombinedOutput()
		if err != nil {
			return fmt.Errorf("--stats: %v: %s", err, out)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("stats_p50_ms=%.1f\n", ms(lat[len(lat)/2]))
	return nil
}
