package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
)

// shiftClock is the real time plus an offset a test moves, shared by the
// fake and the client so both agree on key expiry.
type shiftClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *shiftClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *shiftClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// migrateUnit is what migdb-migrate asks of balena for one unit.
func migrateUnit(ctx context.Context, c balena.Cloud, fleet, deviceType, name string) (balena.Device, []byte, error) {
	d, err := c.Register(ctx, balena.Registration{Fleet: fleet, UUID: balena.NewUUID(), DeviceType: deviceType, Name: name})
	if err != nil {
		return d, nil, err
	}
	cfg, err := c.DeviceConfig(ctx, d, "2.113.0")
	return d, cfg, err
}

// TestRoundTripsPerUnit counts, from the fake's request log, what a
// worker's units cost: a constant per worker (whoami, the fleet, one
// provisioning key per key lifetime, one template per device type) plus
// two per unit (register, name).
func TestRoundTripsPerUnit(t *testing.T) {
	clk := &shiftClock{}
	e := newEnv(t, fakebalena.Config{Now: clk.now}, fastRetry)
	e.c.now = clk.now
	ctx := context.Background()
	if _, err := e.c.Whoami(ctx); err != nil { // the worker's start-up check
		t.Fatal(err)
	}
	const units = 20
	var configs [][]byte
	var devs []balena.Device
	for i := 0; i < units; i++ {
		d, cfg, err := migrateUnit(ctx, e.c, "ops/fleet-one", "", fmt.Sprintf("unit-%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		devs, configs = append(devs, d), append(configs, cfg)
	}
	perWorker := 4 // whoami, application, provisioning key, download-config
	if got, want := e.srv.Requests(), perWorker+2*units; got != want {
		t.Fatalf("%d requests for %d units, want %d (%d per worker + 2 per unit)", got, units, want, perWorker)
	}
	for name, want := range map[fakebalena.Route]int{fakebalena.RouteProvisionKey: 1, fakebalena.RouteDownloadConfig: 1,
		fakebalena.RouteRegister: units, fakebalena.RouteDevicePatch: units, fakebalena.RouteDevice: 0, fakebalena.RouteDeviceKey: 0} {
		if got := e.srv.Calls(name); got != want {
			t.Errorf("%s: %d calls, want %d", name, got, want)
		}
	}
	// Every config.json is the device's own: it reports with it and is online.
	for i, d := range devs {
		var cfg struct{ APIEndpoint, DeviceAPIKey, UUID string }
		if err := json.Unmarshal(configs[i], &cfg); err != nil || cfg.UUID != d.UUID {
			t.Fatalf("config %d: %s (%v)", i, configs[i], err)
		}
		if err := fakebalena.ReportState(ctx, cfg.APIEndpoint, d.UUID, cfg.DeviceAPIKey); err != nil {
			t.Fatal(err)
		}
		if dev, _ := e.srv.Device(d.UUID); dev.Name != fmt.Sprintf("unit-%02d", i) || !e.srv.Online(d.UUID) {
			t.Fatalf("device %d: %+v online %v", i, dev, e.srv.Online(d.UUID))
		}
	}
	// Another device type needs its own template, nothing else.
	if _, _, err := migrateUnit(ctx, e.c, "ops/fleet-one", "raspberrypi4-64", "unit-pi4"); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Calls(fakebalena.RouteDownloadConfig); n != 2 {
		t.Errorf("download-config %d times, want 2 (one per device type)", n)
	}
	// Close to its expiry the shared key is replaced, not used on.
	clk.add(keyLife - keyMargin + time.Second)
	if _, _, err := migrateUnit(ctx, e.c, "ops/fleet-one", "", "unit-late"); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Calls(fakebalena.RouteProvisionKey); n != 2 {
		t.Errorf("%d provisioning keys made, want 2", n)
	}
	// No provisioning key outlives the run by more than keyLife; none is
	// without expiry.
	for _, k := range e.srv.ProvisioningKeys() {
		if k.Expires.IsZero() || k.Expires.After(clk.now().Add(keyLife)) {
			t.Errorf("provisioning key expiring %v (now %v)", k.Expires, clk.now())
		}
	}
	clk.add(keyLife)
	if n := e.srv.UnexpiredProvisioningKeys(clk.now()); n != 0 {
		t.Errorf("%d provisioning keys still valid %v after the run", n, keyLife)
	}
}

// TestSharedKeyRevoked: a registration refused because the shared key
// died early makes a new key and succeeds.
func TestSharedKeyRevoked(t *testing.T) {
	e := newEnv(t, fakebalena.Config{}, fastRetry)
	ctx := context.Background()
	if _, _, err := migrateUnit(ctx, e.c, "ops/fleet-one", "", "a"); err != nil {
		t.Fatal(err)
	}
	e.srv.RevokeProvisioningKeys()
	if _, _, err := migrateUnit(ctx, e.c, "ops/fleet-one", "", "b"); err != nil {
		t.Fatalf("after the key expired under the client: %v", err)
	}
	if n := e.srv.Calls(fakebalena.RouteProvisionKey); n != 2 {
		t.Errorf("%d provisioning keys made, want 2", n)
	}
}

// oldUnit is the call sequence per unit before the round trips were cut
// (the first design): a provisioning key per device, the
// registration, the device looked up again, a configuration downloaded per
// device (minting a provisioning key that never expires) and a device key.
func oldUnit(ctx context.Context, c *Client, app appInfo, userID int64) error {
	uuid := balena.NewUUID()
	var key string
	err := c.call(ctx, request{op: "key", method: "POST", path: "/api-key/v2/", want: 200, out: &key,
		body: map[string]any{"actorType": "application", "actorTypeId": app.id, "roles": []string{"provisioning-api-key"},
			"expiryDate": time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)}})
	if err != nil {
		return err
	}
	if err := c.call(ctx, request{op: "register", method: "POST", path: "/device/register", bearer: key, want: 201,
		body: map[string]any{"user": userID, "application": app.id, "uuid": uuid, "device_type": app.deviceType}}); err != nil {
		return err
	}
	d, _, err := c.device(ctx, uuid, ownerSelect)
	if err != nil {
		return err
	}
	var cfg map[string]json.RawMessage
	if err := c.call(ctx, request{op: "config", method: "POST", path: "/download-config", want: 200, out: &cfg,
		body: map[string]any{"appId": app.id, "version": "2.113.0", "network": "ethernet",
			"appUpdatePollInterval": 10, "deviceType": app.deviceType}}); err != nil {
		return err
	}
	var dk string
	if err := c.call(ctx, request{op: "device key", method: "POST", want: 200, out: &dk, body: map[string]any{},
		path: fmt.Sprintf("/api-key/device/%d/device-key", d.ID)}); err != nil {
		return err
	}
	_, err = assembleConfig(cfg, dk, d.ID, uuid, time.Now())
	return err
}

// BenchmarkUnitAt150ms compares the balena side of one migrated unit with
// the API answering after 150 ms (an internet round trip): the old call
// sequence against Register + DeviceConfig. The client is warm (fleet
// looked up, key and template fetched), as it is for every unit but a
// worker's first.
func BenchmarkUnitAt150ms(b *testing.B) {
	s := fakebalena.Start(fakebalena.Config{})
	defer s.Close()
	s.AddUser("gh_ops", token)
	s.AddApp("ops/fleet-one", "raspberrypi3")
	c, err := New(balena.Options{APIURL: s.URL(), Token: token, Retry: fastRetry})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	user, err := c.Whoami(ctx)
	if err != nil {
		b.Fatal(err)
	}
	app, err := c.app(ctx, "ops/fleet-one")
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := migrateUnit(ctx, c, "ops/fleet-one", "", "warm-up"); err != nil {
		b.Fatal(err)
	}
	s.SetFaults(0, 0, 150*time.Millisecond)
	for _, bm := range []struct {
		name string
		unit func(i int) error
	}{
		{"old-sequence", func(int) error { return oldUnit(ctx, c, app, user.ID) }},
		{"register+config", func(i int) error {
			_, _, err := migrateUnit(ctx, c, "ops/fleet-one", "", fmt.Sprintf("unit-%d", i))
			return err
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			before := s.Requests()
			for i := 0; i < b.N; i++ {
				if err := bm.unit(i); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(s.Requests()-before)/float64(b.N), "requests/unit")
		})
	}
}

// TestConcurrentJobsShareLookups: jobs of one worker starting together
// look the fleet up, make a key and fetch a template once between them.
func TestConcurrentJobsShareLookups(t *testing.T) {
	e := newEnv(t, fakebalena.Config{Latency: 20 * time.Millisecond}, fastRetry)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := migrateUnit(ctx, e.c, "ops/fleet-one", "", fmt.Sprintf("unit-%d", i))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for route, want := range map[fakebalena.Route]int{fakebalena.RouteApplication: 1, fakebalena.RouteProvisionKey: 1,
		fakebalena.RouteDownloadConfig: 1, fakebalena.RouteWhoami: 1, fakebalena.RouteRegister: 8} {
		if got := e.srv.Calls(route); got != want {
			t.Errorf("%s: %d calls, want %d", route, got, want)
		}
	}
}
