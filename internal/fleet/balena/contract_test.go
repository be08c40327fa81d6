package balena_test

// One contract for every balena.Cloud implementation, run against each of
// them as restic runs one suite against every backend: the api adapter
// over HTTP against the fake balena API, the cli adapter running the
// balena CLI stand-in. An adapter passes only if it keeps every promise
// of the interface the workers rely on.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/cli"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
)

// backend is one implementation under test with the levers the suite
// pulls on the balena behind it.
type backend struct {
	cloud balena.Cloud
	// rejected is a client of the same balena whose credentials are refused.
	rejected balena.Cloud
	fleet    string // a fleet that exists
	other    string // a second fleet
	// reportOnline makes the device with this config.json come online the
	// way it does in the field.
	reportOnline func(t *testing.T, uuid string, config []byte)
	// failNext makes the next n requests fail transiently; with
	// retryAfter > 0 balena also says how long to wait.
	failNext func(n int, retryAfter time.Duration)
	// requests counts the requests (HTTP calls or CLI runs) made so far.
	requests func() int
	// inspect tells what balena holds for a device: type, name, tags.
	inspect func(t *testing.T, uuid string) (deviceType, name string, tags map[string]string)
	// keyExpiries lists the expiry of every provisioning key made for
	// fleet (zero: never); nil where the adapter makes none itself.
	keyExpiries func(t *testing.T) []time.Time
	// progress is what the device's dashboard entry shows of its migration.
	progress func(t *testing.T, uuid string) string
	// addOSRelease makes balena list a balenaOS release for a type.
	addOSRelease func(deviceType, version string)
	// can says which promises the backend can be tested on: the real
	// server cannot be made to fail, the CLI prints no Retry-After.
	can map[need]bool
}

// need is what a promise needs from the backend to be tested.
type need string

const (
	always     need = ""
	faults     need = "faults"      // failNext works
	retryAfter need = "retry-after" // the adapter sees Retry-After
	keys       need = "keys"        // keyExpiries works
	releases   need = "releases"    // addOSRelease works
)

// contractRetry retries fast, so the suite measures behaviour, not waits.
var contractRetry = balena.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

const contractToken = "contract-token-not-secret"

func apiBackend(t *testing.T) *backend {
	// The 429s carry Retry-After: 1.
	s := fakebalena.Start(fakebalena.Config{RetryAfter: 1})
	t.Cleanup(s.Close)
	s.AddUser("gh_ops", contractToken)
	s.AddApp("ops/fleet-one", "raspberrypi3")
	s.AddApp("ops/fleet-two", "raspberrypi3")
	newClient := func(token string) balena.Cloud {
		c, err := api.New(balena.Options{APIURL: s.URL(), Token: token, Retry: contractRetry, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return &backend{
		cloud: newClient(contractToken), rejected: newClient("revoked-" + contractToken),
		fleet: "ops/fleet-one", other: "ops/fleet-two",
		reportOnline: func(t *testing.T, uuid string, config []byte) {
			var cfg struct{ APIEndpoint, DeviceAPIKey string }
			if err := json.Unmarshal(config, &cfg); err != nil {
				t.Fatal(err)
			}
			if err := fakebalena.ReportState(context.Background(), cfg.APIEndpoint, uuid, cfg.DeviceAPIKey); err != nil {
				t.Fatal(err)
			}
		},
		failNext: func(n int, retryAfter time.Duration) {
			status := 503
			if retryAfter > 0 {
				status = 429
			}
			for i := 0; i < n; i++ {
				s.FailNext(status)
			}
		},
		requests: s.Requests,
		inspect: func(t *testing.T, uuid string) (string, string, map[string]string) {
			d, ok := s.Device(uuid)
			if !ok {
				t.Fatalf("the fake has no device %s", uuid)
			}
			return d.DeviceType, d.Name, d.Tags
		},
		keyExpiries: func(*testing.T) []time.Time {
			var out []time.Time
			for _, k := range s.ProvisioningKeys() {
				out = append(out, k.Expires)
			}
			return out
		},
		addOSRelease: s.AddOSRelease,
		progress: func(t *testing.T, uuid string) string {
			d, _ := s.Device(uuid)
			if d.ProvisioningProgress == nil {
				return d.ProvisioningState
			}
			return fmt.Sprintf("%d%% %s", *d.ProvisioningProgress, d.ProvisioningState)
		},
		can: map[need]bool{always: true, faults: true, retryAfter: true, keys: true, releases: true},
	}
}

func cliBackend(t *testing.T) *backend {
	testStandIn := func(fleets ...string) (string, string) {
		dir := t.TempDir()
		script, err := os.ReadFile(filepath.Join("cli", "testdata", "balena-standin"))
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "balena")
		if err := os.WriteFile(bin, script, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "apps"), []byte(strings.Join(fleets, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir, bin
	}
	newClient := func(bin string) balena.Cloud {
		c, err := cli.New(balena.Options{CLIPath: bin, Retry: contractRetry, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dir, bin := testStandIn("ops/fleet-one", "ops/fleet-two")
	outDir, outBin := testStandIn("ops/fleet-one")
	if err := os.WriteFile(filepath.Join(outDir, "logged-out"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &backend{
		cloud: newClient(bin), rejected: newClient(outBin),
		fleet: "ops/fleet-one", other: "ops/fleet-two",
		// The stand-in's balena keeps online devices as files.
		reportOnline: func(t *testing.T, uuid string, _ []byte) { write("online/"+uuid, balena.OnlineByHeartbeat) },
		failNext: func(n int, _ time.Duration) {
			write("fail-next", strings.Repeat("BalenaRequestError: Request error: Service Unavailable\n", n))
		},
		requests: func() int {
			b, err := os.ReadFile(filepath.Join(dir, "argv.log"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return strings.Count(string(b), "\n")
		},
		inspect: func(t *testing.T, uuid string) (string, string, map[string]string) {
			dev, err := os.ReadFile(filepath.Join(dir, "devices", uuid))
			if err != nil {
				t.Fatal(err)
			}
			name, _ := os.ReadFile(filepath.Join(dir, "names", uuid))
			tagLines, _ := os.ReadFile(filepath.Join(dir, "tags", uuid))
			tags := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(string(tagLines)), "\n") {
				k, v, _ := strings.Cut(l, "=")
				tags[k] = v
			}
			f := strings.Fields(string(dev)) // id fleet type
			return f[2], strings.TrimSpace(string(name)), tags
		},
		progress: func(t *testing.T, uuid string) string {
			b, _ := os.ReadFile(filepath.Join(dir, "tags", uuid))
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, cli.ProgressTag+"="); ok {
					return v
				}
			}
			return ""
		},
		can: map[need]bool{always: true, faults: true},
	}
}

// TestContract runs every promise against the api adapter on the fake
// and on the real server (open-balena-api), and the cli adapter on the
// balena CLI stand-in. A promise a backend cannot be tested on (a fault
// the real server cannot be made to produce) runs on the others.
func TestContract(t *testing.T) {
	for name, start := range map[string]func(*testing.T) *backend{"api": apiBackend, "cli": cliBackend,
		"api-openbalena": realBackend} {
		t.Run(name, func(t *testing.T) {
			b := start(t)
			for _, c := range contract {
				if !b.can[c.needs] {
					continue
				}
				t.Run(c.name, func(t *testing.T) { c.run(t, start(t)) })
			}
		})
	}
}

// reg is the plain registration of uuid in fleet.
func reg(fleet, uuid string) balena.Registration {
	return balena.Registration{Fleet: fleet, UUID: uuid}
}

var contract = []struct {
	name  string
	needs need
	run   func(t *testing.T, b *backend)
}{
	{"whoami names the account", always, func(t *testing.T, b *backend) {
		u, err := b.cloud.Whoami(context.Background())
		if err != nil || u.Username == "" {
			t.Fatalf("Whoami = %+v, %v", u, err)
		}
	}},
	{"register creates once, then returns the same device", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		uuid := balena.NewUUID()
		d, err := b.cloud.Register(ctx, reg(b.fleet, uuid))
		if err != nil || d.ID == 0 || d.UUID != uuid || d.Existing {
			t.Fatalf("Register = %+v, %v", d, err)
		}
		again, err := b.cloud.Register(ctx, reg(b.fleet, uuid))
		if err != nil || again.ID != d.ID || !again.Existing {
			t.Fatalf("second Register = %+v, %v; want device %d marked existing", again, err, d.ID)
		}
	}},
	{"409: a UUID of another fleet is a conflict", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		uuid := balena.NewUUID()
		if _, err := b.cloud.Register(ctx, reg(b.other, uuid)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.cloud.Register(ctx, reg(b.fleet, uuid)); !errors.Is(err, balena.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
	}},
	{"register in an unknown fleet is not found", always, func(t *testing.T, b *backend) {
		_, err := b.cloud.Register(context.Background(), reg("ops/no-such-fleet", balena.NewUUID()))
		if !errors.Is(err, balena.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	}},
	{"config.json carries the device and its own key, not the fleet's", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		uuid := balena.NewUUID()
		d, err := b.cloud.Register(ctx, reg(b.fleet, uuid))
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.cloud.DeviceConfig(ctx, d, "2.113.0")
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("config.json is not JSON: %v", err)
		}
		if cfg["uuid"] != uuid || cfg["deviceId"] != float64(d.ID) || cfg["deviceApiKey"] == nil || cfg["deviceApiKey"] == "" {
			t.Fatalf("config.json lacks the device's uuid, id or key: %v", cfg)
		}
		if _, ok := cfg["apiKey"]; ok {
			t.Fatal("config.json holds the fleet's provisioning key (apiKey)")
		}
	}},
	{"config needs the device Register returned", always, func(t *testing.T, b *backend) {
		before := b.requests()
		_, err := b.cloud.DeviceConfig(context.Background(), balena.Device{Fleet: b.fleet, UUID: balena.NewUUID()}, "2.113.0")
		if !errors.Is(err, balena.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if n := b.requests() - before; n != 0 {
			t.Errorf("%d requests, want 0", n)
		}
	}},
	{"register with the device's own type, its name and tags", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		uuid := balena.NewUUID()
		r := balena.Registration{Fleet: b.fleet, UUID: uuid, DeviceType: "raspberrypi4-64", Name: "unit-0007",
			Tags: map[string]string{"migrate.unit": "unit-0007", "migrate.host": "10.1.2.3"}}
		d, err := b.cloud.Register(ctx, r)
		if err != nil || d.DeviceType != "raspberrypi4-64" {
			t.Fatalf("Register = %+v, %v", d, err)
		}
		// A retried unit registers again: same device, same name and tags.
		if again, err := b.cloud.Register(ctx, r); err != nil || again.ID != d.ID || again.DeviceType != "raspberrypi4-64" {
			t.Fatalf("second Register = %+v, %v", again, err)
		}
		typ, name, tags := b.inspect(t, uuid)
		if typ != "raspberrypi4-64" || name != "unit-0007" || len(tags) != 2 ||
			tags["migrate.unit"] != "unit-0007" || tags["migrate.host"] != "10.1.2.3" {
			t.Fatalf("balena has type %q name %q tags %v", typ, name, tags)
		}
		data, err := b.cloud.DeviceConfig(ctx, d, "2.113.0")
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct{ DeviceType string }
		if err := json.Unmarshal(data, &cfg); err != nil || cfg.DeviceType != "raspberrypi4-64" {
			t.Fatalf("config.json deviceType %q (%v), want the device's own", cfg.DeviceType, err)
		}
	}},
	{"online only once the device reports, by heartbeat without a VPN", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		uuid := balena.NewUUID()
		if on, err := b.cloud.IsOnline(ctx, uuid); on || !errors.Is(err, balena.ErrNotFound) {
			t.Fatalf("unknown device: %v, %v; want false, ErrNotFound", on, err)
		}
		if _, err := b.cloud.Status(ctx, uuid); !errors.Is(err, balena.ErrNotFound) {
			t.Fatalf("unknown device: status err %v, want ErrNotFound", err)
		}
		d, err := b.cloud.Register(ctx, balena.Registration{Fleet: b.fleet, UUID: uuid, DeviceType: "raspberrypi4-64"})
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.cloud.DeviceConfig(ctx, d, "2.113.0")
		if err != nil {
			t.Fatal(err)
		}
		if st, err := b.cloud.Status(ctx, uuid); st.Online() || err != nil || st.DeviceType != "raspberrypi4-64" {
			t.Fatalf("registered, not booted: %+v, %v; want offline, of its own type", st, err)
		}
		b.reportOnline(t, uuid, data)
		// The real server writes the heartbeat a moment after the request.
		var st balena.DeviceStatus
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if st, err = b.cloud.Status(ctx, uuid); err != nil || st.Online() || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || st.OnlineBy() != balena.OnlineByHeartbeat || st.VPN || st.Heartbeat != balena.HeartbeatOnline {
			t.Fatalf("after its report: %+v, %v; want online by heartbeat, no VPN", st, err)
		}
		if !strings.HasPrefix(st.OSVersion, "balenaOS ") || st.SupervisorVersion == "" || st.DeviceType != "raspberrypi4-64" {
			t.Fatalf("after its report: %+v; want the OS and supervisor it reported and its type", st)
		}
		if on, err := b.cloud.IsOnline(ctx, uuid); !on || err != nil {
			t.Fatalf("IsOnline after its report: %v, %v", on, err)
		}
	}},
	{"provisioning keys expire", keys, func(t *testing.T, b *backend) {
		ctx := context.Background()
		before := len(b.keyExpiries(t))
		for i := 0; i < 3; i++ {
			if _, err := b.cloud.Register(ctx, reg(b.fleet, balena.NewUUID())); err != nil {
				t.Fatal(err)
			}
		}
		exp := b.keyExpiries(t)
		if len(exp) <= before {
			t.Fatalf("%d provisioning keys after registering, %d before", len(exp), before)
		}
		for _, e := range exp {
			if e.IsZero() || e.After(time.Now().Add(15*time.Minute)) || e.Before(time.Now()) {
				t.Errorf("a provisioning key expires %v; want within 15 minutes from now", e)
			}
		}
	}},
	{"the fleet is checked before any device: found, well formed, registrable", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		f, err := b.cloud.CheckFleet(ctx, b.fleet, "2.113.0")
		if err != nil || !strings.EqualFold(f.Slug, b.fleet) || f.OSVersionChecked {
			t.Fatalf("CheckFleet = %+v, %v; want the fleet, the version unchecked (no OS releases listed)", f, err)
		}
		if f, err := b.cloud.CheckFleet(ctx, b.fleet, ""); err != nil || !strings.EqualFold(f.Slug, b.fleet) {
			t.Fatalf("CheckFleet without a version = %+v, %v; want the fleet alone checked", f, err)
		}
		if _, err := b.cloud.CheckFleet(ctx, "ops/no-such-fleet", "2.113.0"); !errors.Is(err, balena.ErrNotFound) {
			t.Errorf("unknown fleet: %v, want ErrNotFound", err)
		}
		if _, err := b.rejected.CheckFleet(ctx, b.fleet, "2.113.0"); !errors.Is(err, balena.ErrUnauthorized) {
			t.Errorf("rejected token: %v, want ErrUnauthorized", err)
		}
		before := b.requests()
		for _, c := range []struct{ fleet, version, says string }{
			{"", "2.113.0", "MIG_APP"}, {"ops/fleet/one", "2.113.0", "org/name"}, {"/fleet", "2.113.0", "org/name"},
			{"ops/my fleet", "2.113.0", "org/name"}, {b.fleet, "banana", "not a balenaOS version"},
			{b.fleet, "1.1.9", "too old"},
		} {
			if _, err := b.cloud.CheckFleet(ctx, c.fleet, c.version); !errors.Is(err, balena.ErrInvalid) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("CheckFleet(%q, %q) = %v, want ErrInvalid saying %q", c.fleet, c.version, err, c.says)
			}
		}
		if n := b.requests() - before; n != 0 {
			t.Errorf("%d requests for malformed settings, want 0", n)
		}
	}},
	{"device types: a retired or unknown one is refused at registration and absent from the list", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		known, err := b.cloud.DeviceTypes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The fleets are of raspberrypi3 (armv7hf).
		for _, c := range []struct {
			slug  string
			class error
		}{{"raspberrypi3", nil}, {"raspberrypi4-64", nil}, {"nuc", balena.ErrInvalid}, {"genericx86-64-ext", balena.ErrInvalid},
			{"genericx86-64", balena.ErrNotFound}, {"no-such-board", balena.ErrNotFound}} {
			if err := balena.CheckDeviceType("check", known, "raspberrypi3", c.slug); c.class == nil && err != nil || !errors.Is(err, c.class) {
				t.Errorf("CheckDeviceType(%s) = %v, want %v", c.slug, err, c.class)
			}
		}
		if dt, ok := balena.FindDeviceType(known, "nuc"); !ok || dt.Slug != "intel-nuc" || dt.Arch != "amd64" {
			t.Errorf("nuc is %+v (%v), want intel-nuc of amd64", dt, ok)
		}
		for _, slug := range []string{"genericx86-64", "no-such-board"} {
			uuid := balena.NewUUID()
			_, err := b.cloud.Register(ctx, balena.Registration{Fleet: b.fleet, UUID: uuid, DeviceType: slug})
			if !errors.Is(err, balena.ErrNotFound) || !strings.Contains(strings.ToLower(err.Error()), "device type") {
				t.Errorf("register as %s: %v, want ErrNotFound naming the device type", slug, err)
			}
			if _, err := b.cloud.Status(ctx, uuid); !errors.Is(err, balena.ErrNotFound) {
				t.Errorf("register as %s left a device: %v", slug, err)
			}
		}
		// balena takes an alias; the server registers any type it knows
		// into any fleet (the architecture is checked before, as above).
		if _, err := b.cloud.Register(ctx, balena.Registration{Fleet: b.fleet, UUID: balena.NewUUID(), DeviceType: "nuc"}); err != nil {
			t.Fatalf("register by alias: %v", err)
		}
	}},
	{"a balenaOS version balena does not list is refused", releases, func(t *testing.T, b *backend) {
		ctx := context.Background()
		b.addOSRelease("raspberrypi3", "2.112.0+rev1")
		b.addOSRelease("raspberrypi3", "2.113.0+rev2")
		if f, err := b.cloud.CheckFleet(ctx, b.fleet, "v2.113.0"); err != nil || !f.OSVersionChecked {
			t.Fatalf("listed version: %+v, %v", f, err)
		}
		_, err := b.cloud.CheckFleet(ctx, b.fleet, "2.114.0")
		if !errors.Is(err, balena.ErrNotFound) || !strings.Contains(err.Error(), "2.113.0+rev2") {
			t.Fatalf("unlisted version: %v, want ErrNotFound naming what balena has", err)
		}
	}},
	{"the dashboard shows the migration's progress", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		uuid := balena.NewUUID()
		if _, err := b.cloud.Register(ctx, reg(b.fleet, uuid)); err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			state string
			pct   int
		}{{"balena-migrate: stage 1", 60}, {"balena-migrate: rebooting into stage 2", 80}} {
			if err := b.cloud.SetProgress(ctx, uuid, p.state, p.pct); err != nil {
				t.Fatal(err)
			}
			if got, want := b.progress(t, uuid), fmt.Sprintf("%d%% %s", p.pct, p.state); got != want {
				t.Fatalf("dashboard shows %q, want %q", got, want)
			}
		}
		if err := b.cloud.SetProgress(ctx, balena.NewUUID(), "balena-migrate: stage 1", 60); err != nil {
			t.Fatalf("progress of a device balena does not know: %v, want no error", err)
		}
	}},
	{"a tag is set, then replaced", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		uuid := balena.NewUUID()
		r := reg(b.fleet, uuid)
		r.Tags = map[string]string{"migdb_unit": "unit-0009"}
		if _, err := b.cloud.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"migrating", "done (heartbeat)"} {
			if err := b.cloud.SetTag(ctx, uuid, "migdb_result", v); err != nil {
				t.Fatal(err)
			}
			if _, _, tags := b.inspect(t, uuid); tags["migdb_result"] != v || tags["migdb_unit"] != "unit-0009" || len(tags) != 2 {
				t.Fatalf("tags %v after setting migdb_result=%q", tags, v)
			}
		}
		if err := b.cloud.SetTag(ctx, balena.NewUUID(), "migdb_result", "x"); !errors.Is(err, balena.ErrNotFound) {
			t.Fatalf("tag on an unknown device: %v, want ErrNotFound", err)
		}
	}},
	{"bad UUID is refused without asking balena", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		before := b.requests()
		for name, call := range map[string]func(string) error{
			"register": func(u string) error { _, err := b.cloud.Register(ctx, reg(b.fleet, u)); return err },
			"config": func(u string) error {
				_, err := b.cloud.DeviceConfig(ctx, balena.Device{ID: 1, Fleet: b.fleet, UUID: u}, "2.113.0")
				return err
			},
			"is online": func(u string) error { _, err := b.cloud.IsOnline(ctx, u); return err },
		} {
			for _, u := range []string{"", "ABCDEF", strings.Repeat("g", 32), balena.NewUUID()[:31], "../" + balena.NewUUID()} {
				if err := call(u); !errors.Is(err, balena.ErrInvalid) || !strings.Contains(err.Error(), "UUID") {
					t.Errorf("%s(%q): err = %v, want ErrInvalid naming the UUID", name, u, err)
				}
			}
		}
		if n := b.requests() - before; n != 0 {
			t.Errorf("%d requests for bad UUIDs, want 0", n)
		}
	}},
	{"no version is refused", always, func(t *testing.T, b *backend) {
		_, err := b.cloud.DeviceConfig(context.Background(), balena.Device{ID: 1, Fleet: b.fleet, UUID: balena.NewUUID()}, " ")
		if !errors.Is(err, balena.ErrInvalid) || !strings.Contains(err.Error(), "MIG_BALENA_VER") {
			t.Fatalf("err = %v, want ErrInvalid naming the setting", err)
		}
	}},
	{"401: rejected credentials, not retried", always, func(t *testing.T, b *backend) {
		ctx := context.Background()
		for name, call := range map[string]func() error{
			"whoami":   func() error { _, err := b.rejected.Whoami(ctx); return err },
			"register": func() error { _, err := b.rejected.Register(ctx, reg(b.fleet, balena.NewUUID())); return err },
			"config": func() error {
				_, err := b.rejected.DeviceConfig(ctx, balena.Device{ID: 1, Fleet: b.fleet, UUID: balena.NewUUID()}, "2.113.0")
				return err
			},
			"is online": func() error { _, err := b.rejected.IsOnline(ctx, balena.NewUUID()); return err },
		} {
			start := time.Now()
			if err := call(); !errors.Is(err, balena.ErrUnauthorized) || errors.Is(err, balena.ErrTransient) {
				t.Errorf("%s: err = %v, want ErrUnauthorized", name, err)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("%s took %v: a rejection must not be retried", name, time.Since(start))
			}
		}
	}},
	{"transient failures shorter than the retries are ridden out", faults, func(t *testing.T, b *backend) {
		b.failNext(contractRetry.Attempts-1, 0)
		if _, err := b.cloud.Whoami(context.Background()); err != nil {
			t.Fatalf("err = %v after %d transient failures", err, contractRetry.Attempts-1)
		}
	}},
	{"transient failures outlasting the retries are ErrTransient", faults, func(t *testing.T, b *backend) {
		before := b.requests()
		b.failNext(contractRetry.Attempts+2, 0)
		_, err := b.cloud.Whoami(context.Background())
		if !errors.Is(err, balena.ErrTransient) {
			t.Fatalf("err = %v, want ErrTransient", err)
		}
		if n := b.requests() - before; n != contractRetry.Attempts {
			t.Fatalf("%d tries, want %d", n, contractRetry.Attempts)
		}
	}},
	{"transient with Retry-After waits as long as balena asked", retryAfter, func(t *testing.T, b *backend) {
		b.failNext(1, time.Second)
		start := time.Now()
		if _, err := b.cloud.Whoami(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The policy's Max is 5 ms: only Retry-After explains the wait.
		if took := time.Since(start); took < 950*time.Millisecond || took > 3*time.Second {
			t.Fatalf("took %v, want about the 1 s balena asked for", took)
		}
	}},
	{"a cancelled context ends the call", always, func(t *testing.T, b *backend) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.cloud.Register(ctx, reg(b.fleet, balena.NewUUID())); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	}},
}
