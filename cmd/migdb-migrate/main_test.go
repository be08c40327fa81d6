package main

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
)

// bin is this program; checkBin is migdb-check-done, for the rollout
// tests that need units to reach done/.
var bin, checkBin string

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "migrate-bin")
	bin = filepath.Join(dir, "migdb-migrate")
	checkBin = filepath.Join(dir, "migdb-check-done")
	if out, err := exec.Command("go", "build", "-o", dir, ".", "../migdb-check-done").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fleet struct {
	t      *testing.T
	base   string
	db     *spool.DB
	fake   *fakebalena.Server
	ssh    *sshtest.Server
	key    string
	envDir string
	args   []string
}

func newFleet(t *testing.T, devices int, slow string) *fleet {
	return newFleetWith(t, devices, slow, nil)
}

// newFleetWith is newFleet with the unit of device i given extra fields.
func newFleetWith(t *testing.T, devices int, slow string, fields func(i int, u *unit.Unit)) *fleet {
	f := &fleet{t: t, base: t.TempDir(), ssh: sshtest.New(t, sshtest.Config{})}
	f.fake = fakebalena.Start(fakebalena.Config{})
	t.Cleanup(f.fake.Close)
	f.fake.AddUser("op", "tok")
	f.fake.AddApp("org/fleet", "genericx86-64-ext")
	var err error
	if f.db, err = spool.Open(f.base); err != nil {
		t.Fatal(err)
	}
	f.key = filepath.Join(f.base, "id")
	signer, err := sshtest.GenerateKey(f.key)
	if err != nil {
		t.Fatal(err)
	}
	f.envDir = filepath.Join(f.base, "env")
	os.MkdirAll(f.envDir, 0o755)
	standin, err := os.ReadFile("../../internal/testenv/fleetsim/balena-migrate-standin")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.envDir, "balena-migrate"), standin, 0o755)
	os.WriteFile(filepath.Join(f.envDir, "image.img.gz"), make([]byte, 1<<20), 0o644)
	if slow != "" {
		os.WriteFile(filepath.Join(f.envDir, "SLOW"), []byte(slow), 0o644)
	}
	for i := 0; i < devices; i++ {
		u, err := f.ssh.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()},
			Sudo: []string{"/home/" + sshtest.UserPrefix + "*/migrate/balena-migrate"}})
		if err != nil {
			t.Fatal(err)
		}
		un, _ := unit.New(fmt.Sprintf("dev-%02d", i), time.Now())
		un.Set("MIG_SSH_HOST", f.ssh.Host)
		un.Set("MIG_SSH_PORT", strconv.Itoa(f.ssh.Port))
		un.Set("MIG_SSH_USER", u.Name)
		if fields != nil {
			fields(i, un)
		}
		if _, err := f.db.Add(un); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(f.base, "logs"), 0o700)
	f.args = []string{"--base", f.base, "--app", "org/fleet", "--balena-ver", "2.113.0", "--cfg-dir", f.envDir,
		"-i", f.key, "--known-hosts", filepath.Join(f.base, "known_hosts"), "--balena-api", f.fake.URL(),
		"--balena-token", "tok", "--reconn-time", "1", "--color", "OFF", "--log-to", filepath.Join(f.base, "logs")}
	return f
}

func (f *fleet) start(extra ...string) *exec.Cmd {
	c := exec.Command(bin, append(append([]string{}, f.args...), extra...)...)
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + f.base}
	if err := c.Start(); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// census maps every unit id to the directories holding it.
func (f *fleet) census() map[string][]spool.Dir {
	m := map[string][]spool.Dir{}
	for _, d := range spool.StateDirs {
		entries, _ := os.ReadDir(f.db.Path(d))
		for _, e := range entries {
			if name, ok := spool.UnitName(d, e.Name()); ok {
				id, _, _ := spool.ParseName(name)
				m[id] = append(m[id], d)
			}
		}
	}
	return m
}

func (f *fleet) waitAll(dir spool.Dir, n int, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		c := f.census()
		in := 0
		for _, ds := range c {
			if len(ds) == 1 && ds[0] == dir {
				in++
			}
		}
		if in == n {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("sh", "-c", "tail -n 30 "+filepath.Join(f.base, "logs")+"/*").CombinedOutput()
			f.t.Fatalf("only %d of %d units reached %s: %v\n%s", in, n, dir, c, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKill9NeverLosesOrDuplicates runs three workers over many units,
// kill -9s them at random moments, restarts them, then drains.
func TestKill9NeverLosesOrDuplicates(t *testing.T) {
	const units = 16
	f := newFleet(t, units, "0.3")
	workers := make([]*exec.Cmd, 3)
	for i := range workers {
		workers[i] = f.start("--jobs", "2")
	}
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		time.Sleep(time.Duration(100+r.Intn(500)) * time.Millisecond)
		i := r.Intn(len(workers))
		workers[i].Process.Signal(syscall.SIGKILL)
		workers[i].Wait()
		kills++
		// Every invariant must hold at every instant, mid-crash included.
		for id, ds := range f.census() {
			if len(ds) != 1 {
				t.Fatalf("after kill %d: unit %s is in %v", kills, id, ds)
			}
		}
		workers[i] = f.start("--jobs", "2")
	}
	f.waitAll(spool.Process, units, 90*time.Second)
	stop := exec.Command(bin, "--base", f.base, "--stop", "--color", "OFF")
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("--stop: %v\n%s", err, out)
	}
	for _, w := range workers {
		if err := w.Wait(); err != nil {
			t.Errorf("worker exit after --stop: %v", err)
		}
	}
	if f.db.StopRequested() {
		t.Error("--stop left the stop file")
	}
	census := f.census()
	if len(census) != units {
		t.Fatalf("%d units known, want %d: %v", len(census), units, census)
	}
	seen := map[string]string{}
	for id := range census {
		found, _ := f.db.Find(id)
		data, _ := os.ReadFile(found[0].Path)
		u, err := unit.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		uuid := u.Get(unit.FieldDeviceID)
		if !balena.ValidUUID(uuid) || u.Status() != unit.StatusMigrated {
			t.Errorf("%s: status %s uuid %q", id, u.Status(), uuid)
		}
		if other, dup := seen[uuid]; dup {
			t.Errorf("units %s and %s share device %s", id, other, uuid)
		}
		seen[uuid] = id
		if _, ok := f.fake.Device(uuid); !ok {
			t.Errorf("%s: device %s not registered", id, uuid)
		}
	}
	if n := len(f.fake.Devices()); n != units {
		t.Errorf("%d devices registered for %d units: a unit got two UUIDs", n, units)
	}
	if left, _ := os.ReadDir(f.db.Path(spool.Tmp)); len(left) != 0 {
		t.Errorf("tmp/ holds %v", left)
	}
	t.Logf("%d kill -9s; %d units migrated once each", kills, units)
}

func TestStartupRefusals(t *testing.T) {
	f := newFleet(t, 1, "")
	noFlash := filepath.Join(f.base, "noflash")
	os.MkdirAll(noFlash, 0o755)
	standin, _ := os.ReadFile(filepath.Join(f.envDir, "balena-migrate"))
	os.WriteFile(filepath.Join(noFlash, "balena-migrate"), standin, 0o755)
	os.WriteFile(filepath.Join(noFlash, "balena-migrate.conf"), []byte("NO_FLASH=TRUE\n"), 0o644)
	// Environments whose image balena would refuse at registration, after
	// upload and pre-flight: a retired type, one of another architecture
	// than the fleet's (genericx86-64-ext), one a sub-directory names.
	imageEnv := func(name, image string) string {
		d := filepath.Join(f.base, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "balena-migrate"), standin, 0o755)
		os.WriteFile(filepath.Join(d, "balena-migrate.conf"), []byte("IMAGE_NAME="+image+"\nNO_FLASH=FALSE\n"), 0o644)
		return d
	}
	retired := imageEnv("retired", "resin-genericx86-64.img.gz")
	otherArch := imageEnv("other-arch", "balena-cloud-raspberrypi4-64-6.8.1.img.gz")
	imageEnv("per-type/raspberrypi3", "balena.img.gz")
	before := f.census()
	run := func(args ...string) (int, string) {
		c := exec.Command(bin, args...)
		c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + f.base}
		out, err := c.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	args := func(over ...string) []string {
		a := append([]string{}, f.args...)
		for i := 0; i+1 < len(over); i += 2 {
			for j := range a {
				if a[j] == over[i] {
					a[j+1] = over[i+1]
				}
			}
		}
		return append(a, "--once")
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad token", args("--balena-token", "nope-secret"), "rejected"},
		{"no environment", args("--cfg-dir", filepath.Join(f.base, "missing")), "migration environment"},
		{"bad port", args("--reconn-time", "-4"), "MIG_RECONN_TIME"},
		{"environment that would not flash", args("--cfg-dir", noFlash), "--rehearsal"},
		{"pretend and rehearsal", append(args(), "--pretend", "--rehearsal"), "exclude each other"},
		// The fleet is checked before any device is touched, in --pretend too.
		{"unknown fleet", args("--app", "org/none"), "no such application"},
		{"unknown fleet, pretending", append(args("--app", "org/none"), "--pretend"), "no such application"},
		{"malformed fleet", args("--app", "org/fleet/one"), "org/name"},
		{"malformed version", args("--balena-ver", "latest"), "--balena-ver"},
		{"version balena does not list", args("--app", "org/listed"), "no balenaOS 2.113.0 for intel-nuc"},
		{"image of a retired type", args("--cfg-dir", retired), `no device type "genericx86-64" (retired, renamed or misspelt): use an image for genericx86-64-ext`},
		{"image of a retired type, pretending", append(args("--cfg-dir", retired), "--pretend"), "IMAGE_NAME resin-genericx86-64.img.gz"},
		{"image the fleet cannot run", args("--cfg-dir", otherArch), "devices of type raspberrypi4-64 (aarch64) cannot run the releases of a fleet of type genericx86-64-ext (amd64)"},
		{"sub-directory the fleet cannot run", args("--cfg-dir", filepath.Join(f.base, "per-type")), "raspberrypi3 of " + filepath.Join(f.base, "per-type", "raspberrypi3") + " (its sub-directory name)"},
	}
	f.fake.AddApp("org/listed", "intel-nuc")
	f.fake.AddOSRelease("intel-nuc", "2.112.0+rev1")
	for _, c := range cases {
		code, out := run(c.args...)
		if code != 2 || !strings.Contains(out, c.want) || strings.Contains(out, "nope-secret") {
			t.Errorf("%s: exit %d, output %q", c.name, code, out)
		}
	}
	after := f.census()
	if fmt.Sprint(before) != fmt.Sprint(after) || f.fake.Calls(fakebalena.RouteRegister) != 0 {
		t.Fatalf("units touched: %v -> %v", before, after)
	}
}

// TestWakeUpOnNewUnit: a waiting worker claims a freshly added unit at once.
func TestWakeUpOnNewUnit(t *testing.T) {
	f := newFleet(t, 1, "")
	// Move the unit aside; the worker starts on an empty db.
	found, _ := f.db.Find("dev-00")
	held := filepath.Join(f.base, "held")
	os.Rename(found[0].Path, held)
	w := f.start()
	defer func() { w.Process.Signal(syscall.SIGTERM); w.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := f.db.LiveWorkers(); n == 0; n, _ = f.db.LiveWorkers() {
		if time.Now().After(deadline) {
			t.Fatal("worker did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the worker is now idle, waiting
	t0 := time.Now()
	os.Rename(held, found[0].Path)
	for {
		if c := f.census()["dev-00"]; len(c) == 1 && c[0] != spool.Units {
			break
		}
		if time.Since(t0) > 5*time.Second {
			t.Fatal("the new unit was not claimed")
		}
		time.Sleep(time.Millisecond)
	}
	if lat := time.Since(t0); lat > 500*time.Millisecond {
		t.Errorf("claimed after %v; fsnotify should wake the worker at once", lat)
	}
}

// TestStopCatchesStartingWorker: --stop issued while a worker is still in
// its start-up checks must still stop that worker.
func TestStopCatchesStartingWorker(t *testing.T) {
	f := newFleet(t, 1, "")
	f.fake.SetFaults(0, 0, 700*time.Millisecond) // slow credential check
	w := f.start()
	stop := exec.Command(bin, "--base", f.base, "--stop", "--color", "OFF")
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("--stop: %v\n%s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		w.Process.Kill()
		t.Fatal("a worker that was starting during --stop kept running")
	}
	if f.db.StopRequested() {
		t.Error("stop file left behind")
	}
}
