package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/rs/zerolog"
)

const token = "s3cret-token-value"

var fastRetry = balena.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

// env is a fake balena with one user and three applications, and a client
// for it.
type env struct {
	srv  *fakebalena.Server
	pi   fakebalena.App // ops/fleet-one, raspberrypi3
	nuc  fakebalena.App // ops/it's, intel-nuc
	dup1 fakebalena.App // a/same
	c    *Client
	logs *bytes.Buffer
}

func newEnv(t *testing.T, cfg fakebalena.Config, retry balena.RetryPolicy) *env {
	t.Helper()
	s := fakebalena.Start(cfg)
	t.Cleanup(s.Close)
	s.AddUser("gh_ops", token)
	e := &env{srv: s, pi: s.AddApp("ops/fleet-one", "raspberrypi3"), nuc: s.AddApp("ops/it's", "intel-nuc"),
		dup1: s.AddApp("a/same", "raspberrypi4-64"), logs: &bytes.Buffer{}}
	s.AddApp("b/same", "raspberrypi4-64")
	c, err := New(balena.Options{APIURL: s.URL(), Token: token, Retry: retry, Timeout: 5 * time.Second,
		Log: zerolog.New(e.logs).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	t.Cleanup(func() {
		if strings.Contains(e.logs.String(), token) {
			t.Errorf("the token appears in the debug log")
		}
	})
	return e
}

func TestEscapeAndLiteral(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ops/fleet-one", "'ops%2Ffleet-one'"},
		{"it's", "'it''s'"},
		{"a b&c=d+e#f%", "'a%20b%26c%3Dd%2Be%23f%25'"},
		{"ünï", "'%C3%BCn%C3%AF'"},
	}
	for _, tt := range tests {
		if got := literal(tt.in); got != tt.want {
			t.Errorf("literal(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestApplicationLookup(t *testing.T) {
	e := newEnv(t, fakebalena.Config{}, fastRetry)
	tests := []struct {
		name, ref string
		wantID    int64
		wantType  string
		wantErr   error
	}{
		{"slug", "ops/fleet-one", e.pi.ID, "raspberrypi3", nil},
		{"slug in other case", "Ops/Fleet-One", e.pi.ID, "raspberrypi3", nil},
		{"numeric id", jsonNum(e.nuc.ID), e.nuc.ID, "intel-nuc", nil},
		{"bare name with a quote", "it's", e.nuc.ID, "intel-nuc", nil},
		{"unknown slug", "ops/none", 0, "", balena.ErrNotFound},
		{"unknown id", "424242", 0, "", balena.ErrNotFound},
		{"ambiguous bare name", "same", 0, "", balena.ErrConflict},
		{"empty", " ", 0, "", balena.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := e.c.app(context.Background(), tt.ref)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if a.id != tt.wantID || a.deviceType != tt.wantType {
				t.Fatalf("got %+v, want id %d type %s", a, tt.wantID, tt.wantType)
			}
		})
	}
	before := e.srv.Calls(fakebalena.RouteApplication)
	if _, err := e.c.app(context.Background(), "ops/fleet-one"); err != nil {
		t.Fatal(err)
	}
	if after := e.srv.Calls(fakebalena.RouteApplication); after != before {
		t.Errorf("a cached application was looked up again (%d -> %d calls)", before, after)
	}
}

func jsonNum(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func reg(fleet, uuid string) balena.Registration {
	return balena.Registration{Fleet: fleet, UUID: uuid}
}

func TestRegisterIsIdempotent(t *testing.T) {
	e := newEnv(t, fakebalena.Config{}, fastRetry)
	ctx := context.Background()
	uuid := balena.NewUUID()
	d1, err := e.c.Register(ctx, reg("ops/fleet-one", uuid))
	if err != nil || d1.Existing || d1.UUID != uuid || d1.ID == 0 || d1.Key == "" || d1.DeviceType != "raspberrypi3" {
		t.Fatalf("first register: %+v, %v", d1, err)
	}
	d2, err := e.c.Register(ctx, reg("ops/fleet-one", uuid))
	if err != nil || !d2.Existing || d2.ID != d1.ID || d2.Key != "" {
		t.Fatalf("second register: %+v, %v (first %+v)", d2, err, d1)
	}
	if n := len(e.srv.Devices()); n != 1 {
		t.Fatalf("%d devices after two registrations of one UUID", n)
	}
	if n := e.srv.RegisterCalls(uuid); n != 2 {
		t.Errorf("register calls %d, want 2", n)
	}
	dev, _ := e.srv.Device(uuid)
	if dev.AppID != e.pi.ID || dev.DeviceType != "raspberrypi3" || dev.UserID == 0 {
		t.Errorf("device registered as %+v", dev)
	}
	_, err = e.c.Register(ctx, reg("ops/it's", uuid))
	if !errors.Is(err, balena.ErrConflict) {
		t.Errorf("same UUID in another application: err = %v, want ErrConflict", err)
	}
	if _, err := e.c.Register(ctx, reg("ops/fleet-one", "ABC")); !errors.Is(err, balena.ErrInvalid) {
		t.Errorf("bad UUID: err = %v, want ErrInvalid", err)
	}
	r := reg("ops/fleet-one", balena.NewUUID())
	r.DeviceType = "genericx86-64"
	if _, err := e.c.Register(ctx, r); !errors.Is(err, balena.ErrNotFound) || !strings.Contains(err.Error(), "Unknown device type genericx86-64") {
		t.Errorf("retired device type: err = %v, want ErrNotFound with balena's words", err)
	}
}

func TestSecretStaysOutOfLogs(t *testing.T) {
	e := newEnv(t, fakebalena.Config{}, fastRetry)
	d, err := e.c.Register(context.Background(), reg("ops/fleet-one", balena.NewUUID()))
	if err != nil {
		t.Fatal(err)
	}
	key := d.Key.Reveal()
	js, _ := json.Marshal(d)
	for _, s := range []string{fmt.Sprint(d), fmt.Sprintf("%+v", d), fmt.Sprintf("%#v", d), string(js)} {
		if strings.Contains(s, key) || !strings.Contains(s, "[secret]") {
			t.Errorf("device key printed: %s", s)
		}
	}
}

// TestRegisterReplyLost drops the reply of a registration that balena did
// carry out; the retry meets a 409 and must find the device.
func TestRegisterReplyLost(t *testing.T) {
	api := fakebalena.New(fakebalena.Config{})
	api.AddUser("gh_ops", token)
	api.AddApp("ops/fleet-one", "raspberrypi3")
	var dropped atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/device/register" && dropped.CompareAndSwap(false, true) {
			api.Handler().ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "Bad Gateway", http.StatusBadGateway)
			return
		}
		api.Handler().ServeHTTP(w, r)
	}))
	defer hs.Close()
	c, err := New(balena.Options{APIURL: hs.URL, Token: token, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	uuid := balena.NewUUID()
	d, err := c.Register(context.Background(), balena.Registration{Fleet: "ops/fleet-one", UUID: uuid, Name: "unit-1"})
	if err != nil || !d.Existing || d.ID == 0 {
		t.Fatalf("register after a lost reply: %+v, %v", d, err)
	}
	if n := len(api.Devices()); n != 1 || api.RegisterCalls(uuid) != 2 {
		t.Fatalf("%d devices, %d register calls; want 1 and 2", n, api.RegisterCalls(uuid))
	}
	if dev, _ := api.Device(uuid); dev.Name != "unit-1" {
		t.Fatalf("device name %q after the conflict path, want unit-1", dev.Name)
	}
	// The key made with the lost registration is unknown here: the config
	// gets a new one, and the device can report with it.
	data, err := c.DeviceConfig(context.Background(), d, "2.26.0")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ DeviceAPIKey string }
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := fakebalena.ReportState(context.Background(), hs.URL, uuid, cfg.DeviceAPIKey); err != nil {
		t.Fatalf("report with the config's key: %v", err)
	}
}

func TestDeviceConfig(t *testing.T) {
	e := newEnv(t, fakebalena.Config{}, fastRetry)
	ctx := context.Background()
	uuid := balena.NewUUID()
	d, err := e.c.Register(ctx, reg("ops/fleet-one", uuid))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Unix()
	raw, err := e.c.DeviceConfig(ctx, d, "2.26.0")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("config.json is not JSON: %v", err)
	}
	if _, ok := cfg["apiKey"]; ok {
		t.Error("config.json still holds the provisioning apiKey")
	}
	at, _ := cfg["registered_at"].(float64)
	if cfg["deviceApiKey"] != d.Key.Reveal() || cfg["deviceId"] != float64(d.ID) || cfg["uuid"] != uuid ||
		int64(at) < before || int64(at) > time.Now().Unix() {
		t.Errorf("device fields wrong: %v", cfg)
	}
	if cfg["deviceType"] != "raspberrypi3" || cfg["applicationId"] != float64(e.pi.ID) {
		t.Errorf("application fields lost: %v", cfg)
	}
	if dev, _ := e.srv.Device(uuid); dev.DeviceKeys != 1 {
		t.Errorf("device has %d keys, want 1 (made with the registration)", dev.DeviceKeys)
	}
	tests := []struct {
		name    string
		dev     balena.Device
		version string
		want    error
	}{
		{"not from Register", balena.Device{Fleet: "ops/fleet-one", UUID: balena.NewUUID()}, "2.26.0", balena.ErrInvalid},
		{"no version", d, " ", balena.ErrInvalid},
		{"unknown application", balena.Device{ID: d.ID, Fleet: "ops/none", UUID: uuid}, "2.26.0", balena.ErrNotFound},
		{"retired type", balena.Device{ID: d.ID, Fleet: "ops/fleet-one", UUID: uuid, DeviceType: "genericx86-64", Key: d.Key}, "2.26.0", balena.ErrNotFound},
		{"deleted device", balena.Device{ID: 1, Fleet: "ops/fleet-one", UUID: uuid}, "2.26.0", balena.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.c.DeviceConfig(ctx, tt.dev, tt.version); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIsOnline(t *testing.T) {
	e := newEnv(t, fakebalena.Config{}, fastRetry)
	ctx := context.Background()
	uuid := balena.NewUUID()
	if on, err := e.c.IsOnline(ctx, uuid); on || !errors.Is(err, balena.ErrNotFound) {
		t.Fatalf("unknown device: %v, %v; want false, ErrNotFound", on, err)
	}
	d, err := e.c.Register(ctx, reg("ops/fleet-one", uuid))
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.c.DeviceConfig(ctx, d, "2.26.0")
	if err != nil {
		t.Fatal(err)
	}
	if on, err := e.c.IsOnline(ctx, uuid); on || err != nil {
		t.Fatalf("registered, not reported: %v, %v; want false, nil", on, err)
	}
	var cfg struct{ APIEndpoint, DeviceAPIKey string }
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := fakebalena.ReportState(ctx, cfg.APIEndpoint, uuid, cfg.DeviceAPIKey); err != nil {
		t.Fatal(err)
	}
	if on, err := e.c.IsOnline(ctx, uuid); !on || err != nil {
		t.Fatalf("after its own report: %v, %v; want true, nil", on, err)
	}
	if _, err := e.c.IsOnline(ctx, "not-a-uuid"); !errors.Is(err, balena.ErrInvalid) {
		t.Fatalf("bad UUID: %v", err)
	}
}
