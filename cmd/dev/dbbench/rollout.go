package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
)

// The rollout half: migdb-migrate over a large units/, with the rollout's
// gate (waves, group limits, the breaker) and --http on or off.
//
//	dbbench fill-units BASE N GROUPS DONE [due]
//	    N units submitted in order (.ids/.order), each of group
//	    site-<i mod GROUPS> (none when GROUPS is 0): the first DONE in done/,
//	    the rest waiting in units/, due in about a week, or now with "due"
//	dbbench migrate BIN BASE SAMPLES IDLE SCRAPES [FLAG...]
//	    a migdb-migrate worker on BASE: claim latency of fresh due units,
//	    idle CPU, memory and, with --http auto, /metrics scrape latency
//	dbbench held BIN BASE IDLE SCRAPES [FLAG...]
//	    a migdb-migrate worker whose due units are all held back by the
//	    rollout: idle CPU and memory once it has sorted them, scrapes

// fillUnits writes the units straight into the database (no fsync: this
// is set-up) and the submission order they would have had.
func fillUnits(base string, n, groups, done int, dueNow bool) error {
	db, err := spool.Open(base)
	if err != nil {
		return err
	}
	week := time.Now().Add(7 * 24 * time.Hour)
	var order bytes.Buffer
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("site-unit-%06d", i)
		u, err := unit.New(id, time.Now().Add(-time.Hour))
		if err != nil {
			return err
		}
		u.Set("MIG_SSH_HOST", "127.0.0.1")
		u.Set("MIG_SSH_PORT", "1")
		if groups > 0 {
			u.Set("MIG_GROUP", fmt.Sprintf("site-%d", i%groups))
		}
		d := spool.Units
		switch {
		case i < done:
			d = spool.Done
			u.SetStatus(unit.StatusMigrated, time.Now().Add(-30*time.Minute))
			u.SetStatus(unit.StatusDone, time.Now().Add(-20*time.Minute))
		case !dueNow:
			u.SetDue(week.Add(time.Duration(i) * time.Second))
		}
		data, err := u.Marshal()
		if err != nil {
			return err
		}
		if err := os.WriteFile(db.Path(d, spool.FileName(d, id, fmt.Sprintf("t%07d", i))), data, 0o640); err != nil {
			return err
		}
		order.WriteString(id + "\n")
	}
	if err := os.MkdirAll(db.Path(spool.IDs), 0o700); err != nil {
		return err
	}
	return os.WriteFile(db.OrderPath(), order.Bytes(), 0o600)
}

// worker starts migdb-migrate on base with flags; "--http auto" gets a
// free port, returned as addr.
func startMigrate(bin, base string, flags []string) (cmd *exec.Cmd, addr string, err error) {
	env := filepath.Join(base, "migratecfg")
	if err := makeEnvironment(env); err != nil {
		return nil, "", err
	}
	for i := 0; i+1 < len(flags); i++ {
		if flags[i] == "--http" && flags[i+1] == "auto" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, "", err
			}
			addr = ln.Addr().String()
			ln.Close()
			flags[i+1] = addr
		}
	}
	logs := filepath.Join(base, "logs")
	os.MkdirAll(logs, 0o700)
	// A key to offer: the probes' devices refuse the connection (a unit
	// to try again later), never the login (a failure, which would trip
	// the breaker).
	key := filepath.Join(base, "id_ed25519")
	if _, err := sshtest.GenerateKey(key); err != nil {
		return nil, "", err
	}
	args := append([]string{"--base", base, "-i", key, "--balena-api", os.Getenv("BENCH_API"), "--app", "demo/fleet", "--balena-ver", "2.113.0",
		"--cfg-dir", env, "--known-hosts", filepath.Join(base, "known_hosts"), "--conn-timeout", "5",
		"--log-to", logs, "--color", "OFF"}, flags...)
	cmd = exec.Command(filepath.Join(bin, "migdb-migrate"), args...)
	cmd.Env = append(os.Environ(), "MIG_BALENA_TOKEN=fake-balena-token")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	return cmd, addr, cmd.Start()
}

// makeEnvironment writes a migration environment migdb-migrate accepts at
// start-up (the probe units never get as far as using it).
func makeEnvironment(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	img := make([]byte, 1<<20)
	rand.Read(img)
	for name, data := range map[string][]byte{
		"balena-migrate":                       []byte("#!/bin/sh\nexit 1\n"),
		"balena-migrate.conf":                  []byte("IMAGE_NAME=resin-genericx86-64-ext-bench.img.gz\nNO_FLASH=FALSE\n"),
		"resin-genericx86-64-ext-bench.img.gz": img,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func stopWorker(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// migrateClaims measures a migdb-migrate worker as claim measures
// migdb-check-done: probes are due units of a group with room (group
// site-<i>, when the worker limits groups) in the last, open wave.
func migrateClaims(bin, base string, samples int, idle time.Duration, scrapes int, flags []string) error {
	db, w, err := watch(base, spool.Units)
	if err != nil {
		return err
	}
	defer w.Close()
	start := time.Now()
	cmd, addr, err := startMigrate(bin, base, flags)
	if err != nil {
		return err
	}
	defer stopWorker(cmd)
	words, err := measureClaims(cmd.Process.Pid, start, samples, idle, func(i int, limit time.Duration) (time.Duration, error) {
		fields := map[string]string{"MIG_SSH_HOST": "127.0.0.1", "MIG_SSH_PORT": "1", "MIG_GROUP": fmt.Sprintf("site-%d", i)}
		return dropDue(db, w, fmt.Sprintf("probe-%04d", i), fields, spool.Units, limit)
	})
	if err != nil {
		return err
	}
	fmt.Println(words + scrapeWords(addr, scrapes))
	return nil
}

// heldIdle starts a worker whose units are all due but held back, waits
// until it has read and sorted them (its CPU use settles), then measures.
func heldIdle(bin, base string, idle time.Duration, scrapes int, flags []string) error {
	start := time.Now()
	cmd, addr, err := startMigrate(bin, base, flags)
	if err != nil {
		return err
	}
	defer stopWorker(cmd)
	settled, err := settle(cmd.Process.Pid, 10*time.Minute)
	if err != nil {
		return err
	}
	cpu, rss, hwm, err := idleCost(cmd.Process.Pid, idle)
	if err != nil {
		return err
	}
	fmt.Printf("settled_s=%.1f idle_cpu_pct=%.3f rss_mib=%.1f peak_rss_mib=%.1f%s\n",
		settled.Sub(start).Seconds(), cpu, float64(rss)/1024, float64(hwm)/1024, scrapeWords(addr, scrapes))
	return nil
}

// settle waits until the process used less than 2% of a CPU over 2 s.
func settle(pid int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	prev, err := cpuTicks(pid)
	if err != nil {
		return time.Time{}, err
	}
	for time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		now, err := cpuTicks(pid)
		if err != nil {
			return time.Time{}, err
		}
		if now-prev <= 4 { // 4 ticks of 100 Hz in 2 s: 2%
			return time.Now(), nil
		}
		prev = now
	}
	return time.Time{}, errors.New("the worker never settled")
}

// idleCost is a process's CPU use (percent of one CPU) over d, then its
// resident and peak resident memory in KiB.
func idleCost(pid int, d time.Duration) (cpu float64, rss, hwm int64, err error) {
	t0, err := cpuTicks(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(d)
	t1, err := cpuTicks(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	rss, hwm, err = memory(pid)
	const hz = 100 // USER_HZ on Linux
	return float64(t1-t0) / hz / d.Seconds() * 100, rss, hwm, err
}

// scrapeWords times n scrapes of /metrics, each after the worker's
// snapshot has gone stale (so each reads the database), as result words.
func scrapeWords(addr string, n int) string {
	if addr == "" || n == 0 {
		return ""
	}
	var lat []time.Duration
	size := 0
	for i := 0; i < n; i++ {
		time.Sleep(1100 * time.Millisecond)
		t0 := time.Now()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return " scrape_error=" + strconv.Quote(err.Error())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		size = len(body)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return fmt.Sprintf(" scrape_p50_ms=%.2f scrape_p99_ms=%.2f scrape_max_ms=%.2f scrape_bytes=%d",
		ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1]), size)
}
