package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/testenv/openbalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

// Against the real server, as the e2e run's VMs meet it: the config.json
// open-balena-api generates (apiEndpoint its TLS front, balenaRootCA the
// front's CA) brings the stand-in online by heartbeat, without VPN, with
// the OS version it reports.
func TestStandinComesOnlineOnOpenBalena(t *testing.T) {
	openbalena.Need(t)
	ctx := context.Background()
	srv, err := openbalena.Start(ctx, openbalena.Options{TLSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	_, fleet, err := srv.NewFleet(ctx, "standin", "genericx86-64-ext")
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.New(balena.Options{APIURL: srv.URL, Token: srv.AdminKey})
	if err != nil {
		t.Fatal(err)
	}
	uuid := balena.NewUUID()
	d, err := c.Register(ctx, balena.Registration{Fleet: fleet, UUID: uuid})
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.DeviceConfig(ctx, d, "2.113.0")
	if err != nil {
		t.Fatal(err)
	}
	boot := t.TempDir()
	if err := os.WriteFile(filepath.Join(boot, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	st := supervisor.DefaultState
	st.OSVersion = "balenaOS 2.113.0"
	if err := run(boot, t.TempDir(), "127.0.0.1", 3, st); err != nil {
		t.Fatal(err)
	}
	dev, found, err := srv.Device(ctx, uuid)
	if err != nil || !found {
		t.Fatalf("no device %s (%v)", uuid, err)
	}
	if dev.HeartbeatState != "online" || dev.IsOnline || dev.OSVersion != "balenaOS 2.113.0" || dev.SupervisorVersion == "" {
		t.Errorf("after the stand-in ran: %+v; want online by heartbeat only, balenaOS 2.113.0, a supervisor version", dev)
	}
	routes, err := srv.Requests()
	if err != nil {
		t.Fatal(err)
	}
	if routes["GET /device/v3/<id>/state"] != 1 || routes["PATCH /device/v3/state"] != 1 {
		t.Errorf("the device's requests: %v, want one state GET and one PATCH", routes)
	}
}
