package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

// The stand-in, run on this host with a resin-boot holding the config.json
// balena made, reaches the API as the supervisor does first — over plain
// HTTP, and over TLS trusting only config.json's balenaRootCA, as for a
// self-signed openBalena — and the device is then online by heartbeat with
// the OS version it was told to report.
func TestStandinComesOnline(t *testing.T) {
	for _, tc := range []struct{ tlsFront, withCA bool }{{false, false}, {true, true}, {true, false}} {
		tlsFront := tc.tlsFront
		fake := fakebalena.New(fakebalena.Config{})
		fake.AddUser("op", "tok")
		fake.AddApp("org/fleet", "genericx86-64-ext")
		var srv *httptest.Server
		if tlsFront {
			srv = httptest.NewTLSServer(fake.Handler())
		} else {
			srv = httptest.NewServer(fake.Handler())
		}
		defer srv.Close()
		hc := srv.Client()
		c, err := api.New(balena.Options{APIURL: srv.URL, Token: "tok", HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		uuid := balena.NewUUID()
		d, err := c.Register(ctx, balena.Registration{Fleet: "org/fleet", UUID: uuid})
		if err != nil {
			t.Fatal(err)
		}
		data, err := c.DeviceConfig(ctx, d, "2.113.0")
		if err != nil {
			t.Fatal(err)
		}
		if tc.withCA {
			var cfg map[string]any
			json.Unmarshal(data, &cfg)
			cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
			cfg["balenaRootCA"] = base64.StdEncoding.EncodeToString(cert)
			data, _ = json.Marshal(cfg)
		}
		boot, dataDir := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(boot, "config.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		st := supervisor.DefaultState
		st.OSVersion = "balenaOS 2.113.0"
		err = run(boot, dataDir, "127.0.0.1", 1, st)
		if tlsFront && !tc.withCA {
			// Without balenaRootCA the private CA is not trusted.
			if err == nil || fake.Online(uuid) {
				t.Errorf("TLS without balenaRootCA: err %v, online %v; want refused", err, fake.Online(uuid))
			}
			continue
		}
		if err != nil {
			t.Fatalf("tls %v: %v", tlsFront, err)
		}
		dev, _ := fake.Device(uuid)
		if !fake.Online(uuid) || fake.Heartbeat(uuid) != "online" || dev.OSVersion != "balenaOS 2.113.0" || dev.SupervisorVersion == "" {
			t.Errorf("tls %v: after the stand-in ran: online %v heartbeat %q %+v", tlsFront, fake.Online(uuid), fake.Heartbeat(uuid), dev)
		}
		if n := fake.Calls(fakebalena.RouteStateGet); n != 1 {
			t.Errorf("tls %v: %d state GETs, want 1", tlsFront, n)
		}
	}
}
