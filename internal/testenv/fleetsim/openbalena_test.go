package fleetsim

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/fleetmig/balena-migrate/internal/testenv/openbalena"
)

// TestSimulatedFleetOnOpenBalena is a fleet run against the real balena
// API: sshd devices whose stand-in, once "flashed", does what balenaOS's
// supervisor does first (state GET, then PATCH, with its device key,
// through TLS trusting config.json's balenaRootCA), real migdb-migrate and
// migdb-check-done processes, open-balena-api with no VPN. The devices that
// report end in done/ on the server's heartbeat (ONLINE_BY=heartbeat); one
// that never reports does not, and fails as lost at --max-age. The
// requests the workers made are counted from the server's own log: two
// per unit on the migrate side (register, name), as on the fake.
func TestSimulatedFleetOnOpenBalena(t *testing.T) {
	testenv.NeedRoot(t, "creates device users; runs PostgreSQL as postgres")
	openbalena.Need(t)
	ctx := context.Background()
	srv, err := openbalena.Start(ctx, openbalena.Options{TLSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	t.Logf("open-balena-api started in %v", srv.StartTime.Round(time.Second))
	_, fleet, err := srv.NewFleet(ctx, "sshd-fleet", DeviceType)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/migdb-add-unit", "../../../cmd/migdb-migrate",
		"../../../cmd/migdb-check-done")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	const units, silent = 4, 1
	const maxAge = 40 * time.Second
	var progress bytes.Buffer
	f, err := Start(Options{Bin: bin, Repo: "../../..", Units: units, Silent: silent, MigrateProcs: 2, CheckProcs: 1, Jobs: 2,
		OnlineDelay: time.Second, Duration: time.Second, Interval: time.Second, MaxAge: maxAge, Out: &progress,
		API: &API{URL: srv.URL, Token: srv.AdminKey, Fleet: fleet}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	homes := ""
	for _, u := range f.users {
		homes += " " + u.Home
	}
	if err := f.Submit(); err != nil {
		t.Fatal(err)
	}
	// The admin's own look-ups (readiness, the fleet's type) are logged
	// too: the workers' requests are what the log gains from here.
	setup, err := srv.Requests()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.StartWorkers(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err = f.Wait(wctx, 500*time.Millisecond)
	logs, _ := exec.Command("sh", "-c", "tail -n 30 "+filepath.Join(f.Work, "logs")+"/*; for h in"+homes+"; do echo \"== $h/migrate/report.log\"; cat $h/migrate/report.log; done").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, progress.String(), logs)
	}
	t.Logf("every unit ended %v after the workers started", time.Since(start).Round(time.Second))
	if c := f.Counts(); c[spool.Done] != units-silent || c[spool.Fail] != silent {
		t.Fatalf("counts %v, want %d done and %d failed\n%s", c, units-silent, silent, logs)
	}

	done, err := f.Units(spool.Done)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range done {
		uuid := u.Get(unit.FieldDeviceID)
		if u.ID() == "device-003" {
			t.Errorf("the device that never reports is done: %v", u.Fields())
		}
		if by := u.Get(unit.FieldOnlineBy); by != "heartbeat" || u.Get(unit.FieldOnlineTS) == "" {
			t.Errorf("%s: ONLINE_BY=%q ONLINE_TS=%q, want heartbeat (no VPN here)", u.ID(), by, u.Get(unit.FieldOnlineTS))
		}
		d, found, err := srv.Device(ctx, uuid)
		switch {
		case err != nil || !found:
			t.Errorf("%s: open-balena-api has no device %s (%v)", u.ID(), uuid, err)
		case d.HeartbeatState != "online" || d.IsOnline:
			t.Errorf("%s: api_heartbeat_state %q, is_online %v; want online by heartbeat only", u.ID(), d.HeartbeatState, d.IsOnline)
		case d.OSVersion != "balenaOS "+osVersion || d.SupervisorVersion == "" || d.DeviceType != DeviceType:
			t.Errorf("%s: the server holds OS %q, supervisor %q, type %q", u.ID(), d.OSVersion, d.SupervisorVersion, d.DeviceType)
		}
	}
	failed, err := f.Units(spool.Fail)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range failed {
		if u.ID() != "device-003" || u.Get(unit.FieldFailClass) != "lost" {
			t.Errorf("%s failed as %s (%s), want only device-003 as lost", u.ID(), u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
			continue
		}
		migrated, _, _ := u.StatusTime()
		failedAt, _, _ := u.FailTime()
		if age := failedAt.Sub(migrated); age < maxAge {
			t.Errorf("the silent device failed %v after migration, before --max-age %v", age, maxAge)
		}
		d, found, err := srv.Device(ctx, u.Get(unit.FieldDeviceID))
		if err != nil || !found || d.HeartbeatState == "online" || d.IsOnline {
			t.Errorf("the silent device on the server: %+v found %v (%v); want registered, never online", d, found, err)
		}
	}

	// Round trips, from the server's own request log.
	routes, err := srv.Requests()
	if err != nil {
		t.Fatal(err)
	}
	for route, n := range setup {
		routes[route] -= n
	}
	t.Logf("open-balena-api served: %v", routes)
	if reg, name := routes["POST /device/register"], routes["PATCH /v7/device(<id>)"]; reg != units || name != units {
		t.Errorf("%d registrations and %d namings for %d units, want one each (2 per unit)", reg, name, units)
	}
	// The start-up checks once per migdb-migrate (fleet, provisioning key,
	// OS release list, config template, the device types the image's
	// type is checked against; whoami on every worker).
	for route, want := range map[string]int{"GET /v7/application": 2, "POST /api-key/v2/": 2, "GET /v7/release": 2,
		"POST /download-config": 2, "GET /v7/device_type": 2, "GET /actor/v1/whoami": 3} {
		if routes[route] != want {
			t.Errorf("%s: %d requests, want %d (once per worker)", route, routes[route], want)
		}
	}
	// The dashboard's phases (registered, stage 1, rebooting; flashed for
	// the devices that came online), one PATCH by UUID each.
	if got, want := routes["PATCH /v7/device"], 3*units+units-silent; got != want {
		t.Errorf("%d progress PATCHes, want %d", got, want)
	}
	if routes["PATCH /device/v3/state"] != units-silent || routes["GET /device/v3/<id>/state"] != units-silent {
		t.Errorf("the devices' own requests: %v, want one state GET and PATCH from each reporting device", routes)
	}
}
