package checkdone

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

const token = "test-token"

type env struct {
	db    *spool.DB
	fake  *fakebalena.Server
	cloud balena.Cloud
	k     *Checker
	keys  map[string]string // device API keys by UUID
}

func newEnv(t *testing.T, settings map[string]string) *env {
	t.Helper()
	srv := fakebalena.Start(fakebalena.Config{})
	t.Cleanup(srv.Close)
	srv.AddUser("op", token)
	srv.AddApp("org/fleet", "raspberrypi3")
	cl, err := api.New(balena.Options{APIURL: srv.URL(), Token: token,
		Retry: balena.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := config.Resolve(config.CheckDone, config.Layer{Source: "test", Values: settings})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, fake: srv, cloud: cl, keys: map[string]string{},
		k: &Checker{Cloud: cl, Settings: s, Log: zerolog.New(zerolog.NewTestWriter(t)), Now: time.Now}}
}

// migrated puts a MIGRATED unit whose status changed age ago into process/,
// registering its device unless uuid is given.
func (e *env) migrated(t *testing.T, id string, age time.Duration, uuid string) string {
	t.Helper()
	if uuid == "" {
		uuid = balena.NewUUID()
		d, err := e.cloud.Register(context.Background(), balena.Registration{Fleet: "org/fleet", UUID: uuid})
		if err != nil {
			t.Fatal(err)
		}
		e.keys[uuid] = d.Key.Reveal()
	}
	u, _ := unit.New(id, time.Now().Add(-age))
	u.SetStatus(unit.StatusMigrated, time.Now().Add(-age))
	u.Set(unit.FieldDeviceID, uuid)
	p, err := e.db.Add(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, e.db.Path(spool.Process, filepath.Base(p))); err != nil {
		t.Fatal(err)
	}
	return uuid
}

func (e *env) runOnce(t *testing.T) {
	t.Helper()
	l := &worker.Loop{DB: e.db, Input: spool.Process, Name: "test", Jobs: 2, Once: true, Log: e.k.Log, Handle: e.k.Handle}
	ctx := context.Background()
	if err := l.Run(ctx, ctx); err != nil {
		t.Fatal(err)
	}
}

// boot makes the device come online as a booted balenaOS does: its
// supervisor's first state GET and PATCH with the device's key.
func (e *env) boot(t *testing.T, uuid string, st supervisor.State) {
	t.Helper()
	if err := supervisor.FirstContact(context.Background(), nil, e.fake.URL(), uuid, e.keys[uuid], st); err != nil {
		t.Fatal(err)
	}
}

// find returns the directory and parsed unit of id.
func (e *env) find(t *testing.T, id string) (spool.Dir, *unit.Unit) {
	t.Helper()
	found, err := e.db.Find(id)
	if err != nil || len(found) != 1 {
		t.Fatalf("unit %s found %v (%v)", id, found, err)
	}
	data, _ := os.ReadFile(found[0].Path)
	u, err := unit.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return found[0].Dir, u
}

func TestOutcomes(t *testing.T) {
	e := newEnv(t, map[string]string{config.MaxStatusAge: "600", config.CheckInterval: "30"})
	online := e.migrated(t, "online", time.Minute, "")
	e.boot(t, online, supervisor.DefaultState)
	e.migrated(t, "waiting", time.Minute, "")
	e.migrated(t, "lost", time.Hour, "")
	e.migrated(t, "unregistered", time.Minute, balena.NewUUID())
	e.migrated(t, "deleted", time.Hour, balena.NewUUID()) // balena never knew it, an hour on
	e.migrated(t, "baduuid", time.Minute, "not-a-uuid")
	wrong := e.migrated(t, "wrongstatus", time.Minute, "")
	_ = wrong
	// Rewrite wrongstatus as INIT.
	_, u := e.find(t, "wrongstatus")
	found, _ := e.db.Find("wrongstatus")
	u.Set(unit.FieldStatus, "INIT")
	data, _ := u.Marshal()
	os.WriteFile(found[0].Path, data, 0o600)
	notDue := e.migrated(t, "notdue", time.Minute, "")
	e.fake.SetOnline(notDue, true)
	found, _ = e.db.Find("notdue")
	_, u = e.find(t, "notdue")
	u.SetDue(time.Now().Add(time.Hour))
	data, _ = u.Marshal()
	os.WriteFile(found[0].Path, data, 0o600)

	e.runOnce(t)

	cases := []struct {
		id    string
		dir   spool.Dir
		class string
		check func(*unit.Unit) string
	}{
		{"online", spool.Done, "", func(u *unit.Unit) string {
			if u.Status() != unit.StatusDone || u.Get(unit.FieldDoneISOTS) == "" || u.Get(unit.FieldStatusTS) == "" {
				return "DONE fields missing"
			}
			return ""
		}},
		{"waiting", spool.Process, "", func(u *unit.Unit) string {
			due, ok, _ := u.Due()
			if !ok || due.Sub(time.Now()) < 25*time.Second || due.Sub(time.Now()) > 31*time.Second {
				return fmt.Sprintf("DUE_TS %v not ~30s ahead", due)
			}
			return ""
		}},
		{"lost", spool.Fail, "lost", nil},
		{"unregistered", spool.Process, "", nil},
		{"deleted", spool.Fail, "api", func(u *unit.Unit) string {
			if !strings.Contains(u.Get(unit.FieldFailMsg), "does not exist in balena") {
				return "message: " + u.Get(unit.FieldFailMsg)
			}
			return ""
		}},
		{"baduuid", spool.Fail, "config_error", nil},
		{"wrongstatus", spool.Fail, "config_error", nil},
		{"notdue", spool.Process, "", func(u *unit.Unit) string {
			if u.Status() != unit.StatusMigrated {
				return "a unit that was not due was checked"
			}
			return ""
		}},
	}
	for _, c := range cases {
		dir, u := e.find(t, c.id)
		if dir != c.dir || u.Get(unit.FieldFailClass) != c.class {
			t.Errorf("%s: in %s class %q, want %s %q (%s)", c.id, dir, u.Get(unit.FieldFailClass), c.dir, c.class, u.Get(unit.FieldFailMsg))
		}
		if c.check != nil {
			if msg := c.check(u); msg != "" {
				t.Errorf("%s: %s", c.id, msg)
			}
		}
		logData, err := os.ReadFile(u.Get(unit.FieldOutputLog))
		if c.id != "notdue" && (err != nil || len(logData) == 0) {
			t.Errorf("%s: no unit log (%v)", c.id, err)
		}
	}
	if left, _ := os.ReadDir(e.db.Path(spool.Tmp)); len(left) != 0 {
		t.Errorf("tmp/ holds %v", left)
	}
}

func TestAPIStormNeverFailsUnit(t *testing.T) {
	e := newEnv(t, map[string]string{config.MaxStatusAge: "60", config.CheckInterval: "30"})
	// Even a unit past its max age is not failed while balena is down:
	// we cannot know whether the device is online.
	e.migrated(t, "storm", time.Hour, "")
	e.fake.SetFaults(1, http.StatusServiceUnavailable, 0)
	e.runOnce(t)
	dir, u := e.find(t, "storm")
	if dir != spool.Process || u.Has(unit.FieldFailClass) {
		t.Fatalf("storm: in %s, class %q", dir, u.Get(unit.FieldFailClass))
	}
	if !strings.Contains(readLog(t, u), "balena could not be asked") {
		t.Error("unit log does not say why it waits")
	}
	if e.fake.Faults() < 3 {
		t.Errorf("only %d faulted calls: no retries happened", e.fake.Faults())
	}
}

func readLog(t *testing.T, u *unit.Unit) string {
	data, _ := os.ReadFile(u.Get(unit.FieldOutputLog))
	return string(data)
}

func TestTwoInstancesNeverCheckAUnitTwice(t *testing.T) {
	e := newEnv(t, map[string]string{config.MaxStatusAge: "600", config.CheckInterval: "3600"})
	const n = 40
	for i := 0; i < n; i++ {
		e.migrated(t, fmt.Sprintf("u%02d", i), time.Minute, "")
	}
	before := e.fake.Calls(fakebalena.RouteDevice)
	e.fake.SetFaults(0, 0, 5*time.Millisecond)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.runOnce(t)
		}()
	}
	wg.Wait()
	if got := e.fake.Calls(fakebalena.RouteDevice) - before; got != n {
		t.Fatalf("%d device look-ups for %d units: some unit was checked twice (or not at all)", got, n)
	}
	for i := 0; i < n; i++ {
		if dir, _ := e.find(t, fmt.Sprintf("u%02d", i)); dir != spool.Process {
			t.Errorf("u%02d in %s", i, dir)
		}
	}
}

// TestRevokedTokenStopsTheWorker: a 401 is no unit's fault and no later
// look can pass it: the worker stops with a usage error (exit 2) and the
// unit stays where it was.
func TestRevokedTokenStopsTheWorker(t *testing.T) {
	e := newEnv(t, nil)
	e.migrated(t, "gw-1", time.Minute, "")
	e.fake.FailNext(http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized)
	l := &worker.Loop{DB: e.db, Input: spool.Process, Name: "test", Jobs: 1, Log: e.k.Log, Handle: e.k.Handle}
	errc := make(chan error, 1)
	go func() { errc <- l.Run(context.Background(), context.Background()) }()
	select {
	case err := <-errc:
		if !usage.Is(err) || !strings.Contains(err.Error(), "rejected the token") {
			t.Fatalf("Run = %v, want a usage error about the token", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("check-done kept polling with a revoked token")
	}
	if d, u := e.find(t, "gw-1"); d != spool.Process || u.Has(unit.FieldFailClass) {
		t.Fatalf("unit in %s, class %q", d, u.Get(unit.FieldFailClass))
	}
}
