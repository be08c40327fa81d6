package balena_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/testenv/openbalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

// realAPI is one open-balena-api for this test binary: each contract case
// makes its own fleets in it.
var realAPI = &openbalena.Shared{}

func TestMain(m *testing.M) {
	code := m.Run()
	realAPI.Stop()
	os.Exit(code)
}

// counting counts the HTTP requests an adapter makes.
type counting struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// realBackend is the api adapter against open-balena-api. The fleets are
// of raspberrypi3, as on the fake; the admin's key is the operator's, a
// revoked key of the same account the rejected one.
func realBackend(t *testing.T) *backend {
	srv := realAPI.Get(t)
	ctx := context.Background()
	suffix := balena.NewUUID()[:8]
	newFleet := func(name string) string {
		_, slug, err := srv.NewFleet(ctx, name+"-"+suffix, "raspberrypi3")
		if err != nil {
			t.Fatal(err)
		}
		return slug
	}
	fleet, other := newFleet("fleet-one"), newFleet("fleet-two")
	keyID, revoked, err := srv.NewUserKey(ctx, "revoked-"+suffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RevokeKey(ctx, keyID); err != nil {
		t.Fatal(err)
	}
	count := &counting{next: http.DefaultTransport}
	newClient := func(token string, hc *http.Client) balena.Cloud {
		c, err := api.New(balena.Options{APIURL: srv.URL, Token: token, Retry: contractRetry,
			Timeout: 30 * time.Second, HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return &backend{
		cloud:    newClient(srv.AdminKey, &http.Client{Transport: count, Timeout: 30 * time.Second}),
		rejected: newClient(revoked, nil),
		fleet:    fleet, other: other,
		// The device reaches the API as the supervisor does, at the API's
		// own address (config.json says https://<API_HOST>; no TLS here).
		reportOnline: func(t *testing.T, uuid string, config []byte) {
			var cfg struct{ DeviceAPIKey string }
			if err := json.Unmarshal(config, &cfg); err != nil {
				t.Fatal(err)
			}
			if err := supervisor.FirstContact(ctx, nil, srv.URL, uuid, cfg.DeviceAPIKey, supervisor.DefaultState); err != nil {
				t.Fatal(err)
			}
		},
		requests: func() int { return int(count.n.Load()) },
		inspect: func(t *testing.T, uuid string) (string, string, map[string]string) {
			d, found, err := srv.Device(ctx, uuid)
			if err != nil || !found {
				t.Fatalf("open-balena-api has no device %s (%v)", uuid, err)
			}
			return d.DeviceType, d.Name, d.Tags
		},
		keyExpiries: func(t *testing.T) []time.Time {
			exp, err := srv.ProvisioningKeyExpiries(ctx, fleet)
			if err != nil {
				t.Fatal(err)
			}
			return exp
		},
		progress: func(t *testing.T, uuid string) string {
			d, _, err := srv.Device(ctx, uuid)
			if err != nil {
				t.Fatal(err)
			}
			if d.ProvisioningProgress == nil {
				return d.ProvisioningState
			}
			return fmt.Sprintf("%d%% %s", *d.ProvisioningProgress, d.ProvisioningState)
		},
		can: map[need]bool{always: true, keys: true},
	}
}

// TestRoundTripsPerUnitOnOpenBalena measures what a migdb-migrate worker's
// units cost the real server: the start-up checks (whoami; the fleet, a
// provisioning key, the OS release list and the config template of
// CheckFleet) once, then two requests per unit (register, name), the
// config.json coming from the kept template — as on the fake.
func TestRoundTripsPerUnitOnOpenBalena(t *testing.T) {
	srv := realAPI.Get(t)
	ctx := context.Background()
	_, fleet, err := srv.NewFleet(ctx, "roundtrips-"+balena.NewUUID()[:8], "raspberrypi4-64")
	if err != nil {
		t.Fatal(err)
	}
	count := &counting{next: http.DefaultTransport}
	c, err := api.New(balena.Options{APIURL: srv.URL, Token: srv.AdminKey, Retry: contractRetry,
		HTTPClient: &http.Client{Transport: count, Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Whoami(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckFleet(ctx, fleet, "2.113.0"); err != nil {
		t.Fatal(err)
	}
	perWorker := int(count.n.Load())
	const units = 10
	for i := 0; i < units; i++ {
		d, err := c.Register(ctx, balena.Registration{Fleet: fleet, UUID: balena.NewUUID(), Name: fmt.Sprintf("unit-%02d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeviceConfig(ctx, d, "2.113.0"); err != nil {
			t.Fatal(err)
		}
	}
	perUnit := float64(int(count.n.Load())-perWorker) / units
	t.Logf("open-balena-api: %d requests per worker, %.1f per unit", perWorker, perUnit)
	if perWorker != 5 || perUnit != 2 {
		t.Errorf("%d requests per worker and %.1f per unit, want 5 and 2", perWorker, perUnit)
	}
}
