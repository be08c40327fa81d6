package rollout_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/migrate"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

// TestWindowWithDevices runs the real migdb-migrate pipeline against sshd
// devices and the fake balena API, through a gate whose clock the test
// sets: units of a 22:00-05:00 window in Berlin wait at 21:59, are
// migrated after 22:00, and a unit submitted at 05:00 waits again.
func TestWindowWithDevices(t *testing.T) {
	srv := sshtest.New(t, sshtest.Config{})
	fake := fakebalena.Start(fakebalena.Config{})
	t.Cleanup(fake.Close)
	fake.AddUser("op", "tok")
	fake.AddApp("org/fleet", "genericx86-64-ext")
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	signer, err := sshtest.GenerateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	envDir := filepath.Join(dir, "env")
	os.MkdirAll(envDir, 0o755)
	standIn, err := os.ReadFile("../../testenv/fleetsim/balena-migrate-standin")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(envDir, "balena-migrate"), standIn, 0o755)
	os.WriteFile(filepath.Join(envDir, "image.img.gz"), make([]byte, 64<<10), 0o644)
	s, err := config.Resolve(config.Migrate, config.Layer{Source: "test", Values: map[string]string{
		config.App: "org/fleet", config.BalenaVer: "2.113.0", config.CfgDir: envDir, config.SSHKey: key,
		config.KnownHosts: filepath.Join(dir, "known_hosts"), config.ConnTimeout: "10", config.Duration: "1",
		config.Window: "22:00-05:00", config.TZ: "Europe/Berlin",
	}})
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := api.New(balena.Options{APIURL: fake.URL(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}

	h := newHarness(t)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	// Days ahead of the real clock: units are created now, and due (for
	// the pipeline's MIG_MIN_AGE) from then on.
	y, mo, d := time.Now().In(berlin).AddDate(0, 0, 2).Date()
	h.set(time.Date(y, mo, d, 21, 59, 0, 0, berlin))
	m := &migrate.Migrator{Cloud: cloud, Settings: s, Log: zerolog.New(zerolog.NewTestWriter(t)), Now: h.now}
	h.handler = func(ctx context.Context, j *worker.Job) worker.Outcome {
		o := m.Handle(ctx, j)
		h.claims <- j.Unit.ID()
		return o
	}
	h.dueOf = m.DueOf
	device := func(id string) {
		u, err := srv.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()},
			Sudo: []string{"/home/" + sshtest.UserPrefix + "*/migrate/balena-migrate"}})
		if err != nil {
			t.Fatal(err)
		}
		h.add(map[string]string{config.SSHHost: srv.Host, config.SSHPort: strconv.Itoa(srv.Port), config.SSHUser: u.Name}, id)
	}
	device("site-a")
	device("site-b")
	workerRules := func(u *unit.Unit) rollout.UnitRules {
		us, err := s.ForUnit(u.Settings(), u.ID())
		if err != nil {
			return rollout.UnitRules{}
		}
		return rollout.UnitRules{Group: us.Unit.Group, Window: us.Unit.Window, Zone: us.Unit.TZ}
	}
	h.start(&rollout.Gate{Rules: workerRules})
	h.quiet(2 * time.Second)
	h.set(time.Date(y, mo, d, 22, 0, 30, 0, berlin))
	h.poke()
	h.expect("site-a", "site-b")
	for _, id := range []string{"site-a", "site-b"} {
		if d := h.where(id); d != spool.Process {
			t.Errorf("%s in %s after the window opened", id, d)
		}
	}
	h.set(time.Date(y, mo, d+1, 5, 0, 0, 0, berlin))
	device("site-c")
	h.quiet(2 * time.Second)
	if d := h.where("site-c"); d != spool.Units {
		t.Errorf("site-c is in %s outside its window", d)
	}
	if n := len(fake.Devices()); n != 2 {
		t.Errorf("%d devices registered, want 2", n)
	}
}
