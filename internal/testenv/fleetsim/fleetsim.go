// Package fleetsim runs the whole product against a simulated fleet on this
// machine: OpenSSH sshd on loopback with one non-root user per "device", the
// stage-1 stand-in as balena-migrate, the fake balena API as a process (or
// a balena API given to it: open-balena-api in its tests), and the real
// migdb binaries as worker processes. The demo and the fleet benchmark are
// built on it.
package fleetsim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
)

// Options shape a simulated fleet run.
type Options struct {
	Bin          string // directory holding the built binaries
	Repo         string // repository root (for the stand-in script)
	Units        int
	MigrateProcs int
	CheckProcs   int
	Jobs         int
	OnlineDelay  time.Duration // from the stand-in's "reboot" to its state report
	Duration     time.Duration // MIG_DURATION
	Interval     time.Duration // MIG_CHECK_INTERVAL
	Out          io.Writer     // progress
	Keep         bool          // keep the work directory
	APILatency   time.Duration // the fake balena API answers after this long
	// API, when set, is the balena API the run uses instead of starting
	// the fake (APILatency then does nothing).
	API *API
	// MaxAge is migdb-check-done's --max-age; 300 s when 0.
	MaxAge time.Duration
	// Silent is how many devices, the last ones, never report once
	// "flashed": their balenaOS never reaches balena.
	Silent int
}

// API is a running balena API: where the workers reach it, the operator's
// token and the fleet (slug) the devices join.
type API struct {
	URL   string
	Token string
	Fleet string
}

// Fleet is a running simulation.
type Fleet struct {
	o       Options
	Work    string
	ssh     *sshtest.Server
	users   []*sshtest.User
	fake    *exec.Cmd
	URL     string
	token   string
	fleet   string
	key     string
	env     string
	workers []*exec.Cmd
	db      *spool.DB
}

const token = "demo-token-not-secret"

// DeviceType is the simulated devices' balena device type, the fleet's: a
// type balena's contracts still hold (open-balena-api refuses to register
// the retired genericx86-64).
const DeviceType = "genericx86-64-ext"

const imageName = "resin-" + DeviceType + "-demo.img.gz"

// neverReports, in a device user's home, keeps its stand-in from reporting.
const neverReports = "NEVER_REPORTS"

// Start sets up the devices, the fake balena API and the migration
// environment. Close undoes all of it.
func Start(o Options) (f *Fleet, err error) {
	f = &Fleet{o: o, token: token, fleet: "demo/fleet"}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.Work, err = os.MkdirTemp("", "balena-migrate-demo-"); err != nil {
		return f, err
	}
	f.say("work directory %s", f.Work)
	if f.db, err = spool.Open(f.Work); err != nil {
		return f, err
	}
	if f.ssh, err = sshtest.Start(sshtest.Config{}); err != nil {
		return f, err
	}
	f.say("sshd listening on %s for %d simulated devices", f.ssh.Addr(), o.Units)
	f.key = filepath.Join(f.Work, "id_ed25519")
	signer, err := sshtest.GenerateKey(f.key)
	if err != nil {
		return f, err
	}
	for i := 0; i < o.Units; i++ {
		u, err := f.ssh.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()},
			Sudo: []string{"/home/" + sshtest.UserPrefix + "*/migrate/balena-migrate"}})
		if err != nil {
			return f, err
		}
		f.users = append(f.users, u)
		if i >= o.Units-o.Silent {
			// Beside the migration directory, where the stand-in looks.
			if err := os.WriteFile(filepath.Join(u.Home, neverReports), nil, 0o644); err != nil {
				return f, err
			}
		}
	}
	if o.API != nil {
		f.URL, f.token, f.fleet = o.API.URL, o.API.Token, o.API.Fleet
		f.say("balena API at %s, fleet %s (a device comes online when it reports itself, %v after its reboot)", f.URL, f.fleet, f.o.OnlineDelay)
	} else if err := f.startFake(); err != nil {
		return f, err
	}
	return f, f.makeEnvironment()
}

func (f *Fleet) say(format string, a ...any) {
	fmt.Fprintf(f.o.Out, "demo: "+format+"\n", a...)
}

func (f *Fleet) startFake() error {
	urlFile := filepath.Join(f.Work, "fake-api.url")
	f.fake = exec.Command(filepath.Join(f.o.Bin, "fake-balena-api"), "--listen", "127.0.0.1:0",
		"--app", "demo/fleet:"+DeviceType, "--url-file", urlFile, "--latency", f.o.APILatency.String())
	f.fake.Env = append(os.Environ(), "MIG_BALENA_TOKEN="+f.token)
	f.fake.Stdout = io.Discard
	f.fake.Stderr = os.Stderr
	if err := f.fake.Start(); err != nil {
		return fmt.Errorf("fake balena API: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if data, err := os.ReadFile(urlFile); err == nil && len(data) > 0 {
			f.URL = strings.TrimSpace(string(data))
			break
		}
		if time.Now().After(deadline) {
			return errors.New("fake balena API did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.say("fake balena API at %s (a device comes online when it reports itself, %v after its reboot)", f.URL, f.o.OnlineDelay)
	return nil
}

// makeEnvironment builds the migration environment: the stand-in as
// balena-migrate, an image-sized file, and how long the stand-in's
// simulated reboot takes before the device reports itself.
func (f *Fleet) makeEnvironment() error {
	f.env = filepath.Join(f.Work, "migratecfg")
	if err := os.MkdirAll(f.env, 0o755); err != nil {
		return err
	}
	standin, err := os.ReadFile(filepath.Join(f.o.Repo, "internal", "testenv", "fleetsim", "balena-migrate-standin"))
	if err != nil {
		return err
	}
	files := map[string]string{
		"balena-migrate": string(standin),
		"REPORT_DELAY":   fmt.Sprintf("%.3f\n", f.o.OnlineDelay.Seconds()),
		// The balenaOS the "flashed" device reports: the workers' --balena-ver.
		"OS_VERSION":          "balenaOS " + osVersion + "\n",
		"balena-migrate.conf": "IMAGE_NAME=" + imageName + "\nNO_FLASH=FALSE\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(f.env, name), []byte(data), 0o755); err != nil {
			return err
		}
	}
	img, err := os.Create(filepath.Join(f.env, imageName))
	if err != nil {
		return err
	}
	defer img.Close()
	_, err = io.CopyN(img, rand.Reader, 4<<20) // incompressible, like a gzip image
	return err
}

// Submit adds one unit per device with migdb-add-unit.
func (f *Fleet) Submit() error {
	for i, u := range f.users {
		args := []string{"--base", f.Work, "--color", "OFF", "--host", f.ssh.Host, "-p", strconv.Itoa(f.ssh.Port), "-u", u.Name, fmt.Sprintf("device-%03d", i)}
		if i == 0 {
			f.say("$ migdb-add-unit %s", strings.Join(args, " "))
		}
		out, err := exec.Command(filepath.Join(f.o.Bin, "migdb-add-unit"), args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("migdb-add-unit: %v: %s", err, out)
		}
	}
	f.say("submitted %d units", len(f.users))
	return nil
}

// StartWorkers starts the migdb-migrate and migdb-check-done processes.
func (f *Fleet) StartWorkers() error {
	logs := filepath.Join(f.Work, "logs")
	os.MkdirAll(logs, 0o700)
	common := []string{"--base", f.Work, "--jobs", strconv.Itoa(f.o.Jobs), "--balena-api", f.URL, "--log-to", logs, "--color", "OFF"}
	mig := append(append([]string{}, common...), "--app", f.fleet, "--balena-ver", osVersion, "--cfg-dir", f.env,
		"-i", f.key, "--known-hosts", filepath.Join(f.Work, "known_hosts"), "--dur", secs(f.o.Duration))
	maxAge := f.o.MaxAge
	if maxAge == 0 {
		maxAge = 300 * time.Second
	}
	chk := append(append([]string{}, common...), "--check-interval", secs(f.o.Interval), "--max-age", secs(maxAge))
	f.say("$ MIG_BALENA_TOKEN=… migdb-migrate %s", strings.Join(mig, " "))
	f.say("$ MIG_BALENA_TOKEN=… migdb-check-done %s", strings.Join(chk, " "))
	for i := 0; i < f.o.MigrateProcs+f.o.CheckProcs; i++ {
		name, args := "migdb-migrate", mig
		if i >= f.o.MigrateProcs {
			name, args = "migdb-check-done", chk
		}
		c := exec.Command(filepath.Join(f.o.Bin, name), args...)
		c.Env = append(os.Environ(), "MIG_BALENA_TOKEN="+f.token)
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Start(); err != nil {
			return err
		}
		f.workers = append(f.workers, c)
	}
	f.say("started %d migdb-migrate and %d migdb-check-done workers (--jobs %d)", f.o.MigrateProcs, f.o.CheckProcs, f.o.Jobs)
	return nil
}

func secs(d time.Duration) string { return strconv.Itoa(int(d.Round(time.Second) / time.Second)) }

// Counts returns how many unit files each state directory holds.
func (f *Fleet) Counts() map[spool.Dir]int {
	m := map[spool.Dir]int{}
	for _, d := range spool.StateDirs {
		entries, _ := os.ReadDir(f.db.Path(d))
		for _, e := range entries {
			if _, ok := spool.UnitName(d, e.Name()); ok {
				m[d]++
			}
		}
	}
	return m
}

// Units reads the units a state directory holds.
func (f *Fleet) Units(d spool.Dir) ([]*unit.Unit, error) {
	entries, err := os.ReadDir(f.db.Path(d))
	if err != nil {
		return nil, err
	}
	var us []*unit.Unit
	for _, e := range entries {
		if _, ok := spool.UnitName(d, e.Name()); !ok {
			continue
		}
		data, err := os.ReadFile(f.db.Path(d, e.Name()))
		if err != nil {
			return nil, err
		}
		u, err := unit.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		us = append(us, u)
	}
	return us, nil
}

// Wait shows progress until every unit has ended (done, or failed for
// the Silent devices), more units than Silent fail, or ctx ends.
func (f *Fleet) Wait(ctx context.Context, every time.Duration) error {
	last := ""
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		c := f.Counts()
		line := fmt.Sprintf("units %d  in-flight %d  migrated %d  done %d  failed %d", c[spool.Units], c[spool.Tmp], c[spool.Process], c[spool.Done], c[spool.Fail])
		if line != last && f.o.Out != io.Discard {
			f.say("%s", line)
			last = line
		}
		switch {
		case c[spool.Fail] > f.o.Silent:
			return fmt.Errorf("%d units failed: see %s", c[spool.Fail], f.db.Path(spool.Fail))
		case c[spool.Done]+c[spool.Fail] == f.o.Units:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Stats prints migdb-check-done --stats.
func (f *Fleet) Stats() {
	out, _ := exec.Command(filepath.Join(f.o.Bin, "migdb-check-done"), "--base", f.Work, "--stats").CombinedOutput()
	f.o.Out.Write(out)
}

// StopWorkers runs migdb-migrate --stop and waits for every worker.
func (f *Fleet) StopWorkers() {
	if len(f.workers) == 0 {
		return
	}
	stop := exec.Command(filepath.Join(f.o.Bin, "migdb-migrate"), "--base", f.Work, "--stop", "--color", "OFF")
	stop.Stdout, stop.Stderr = io.Discard, os.Stderr
	done := make(chan error, 1)
	go func() { done <- stop.Run() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		stop.Process.Kill()
	}
	for _, w := range f.workers {
		w.Process.Signal(syscall.SIGTERM)
		w.Wait()
	}
	f.workers = nil
}

// Close stops everything and removes the devices and the work directory.
func (f *Fleet) Close() {
	f.StopWorkers()
	if f.fake != nil && f.fake.Process != nil {
		f.fake.Process.Signal(syscall.SIGTERM)
		f.fake.Wait()
	}
	if f.ssh != nil {
		if err := f.ssh.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: cleaning up devices:", err)
		}
	}
	if f.Work != "" && !f.o.Keep {
		os.RemoveAll(f.Work)
	}
}
