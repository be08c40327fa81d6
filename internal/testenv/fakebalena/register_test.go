package fakebalena

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRegisterRules(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, a, b := seeded(t, Config{Now: clk.now})
	keyA := postKey(t, s, a.ID, clk.now().Add(10*time.Minute))
	keyB := postKey(t, s, b.ID, clk.now().Add(10*time.Minute))
	uuid := strings.Repeat("ab", 16)
	user := jsonOf(t, s.AddUser("second", "tok2").ID)
	body := func(app int64, uuid, dt string) string {
		return `{"user":` + user + `,"application":` + jsonOf(t, app) + `,"uuid":"` + uuid + `","device_type":"` + dt + `"}`
	}
	tests := []struct {
		name, token, body string
		status            int
	}{
		{"user token is not a provisioning key", userToken, body(a.ID, uuid, "raspberrypi3"), 401},
		{"no token", "", body(a.ID, uuid, "raspberrypi3"), 401},
		{"key of another app", keyB, body(a.ID, uuid, "raspberrypi3"), 400},
		{"retired device type", keyA, body(a.ID, uuid, "genericx86-64"), 404},
		{"bad uuid", keyA, body(a.ID, "ABC", "raspberrypi3"), 400},
		{"created", keyA, body(a.ID, uuid, "raspberrypi3"), 201},
		{"duplicate uuid", keyA, body(a.ID, uuid, "raspberrypi3"), 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, "POST", s.URL()+"/device/register", tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
			switch r.status {
			case 201:
				var got struct {
					ID   int64  `json:"id"`
					UUID string `json:"uuid"`
				}
				if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.ID == 0 || got.UUID != uuid {
					t.Fatalf("201 body %s (%v)", r.body, err)
				}
			case 409:
				if r.body != `"uuid" must be unique.` {
					t.Fatalf("409 body %q", r.body)
				}
			}
		})
	}
	if n := s.RegisterCalls(uuid); n != 2 {
		t.Errorf("RegisterCalls = %d, want 2 (the created one and the conflict)", n)
	}
	if n := len(s.Devices()); n != 1 {
		t.Errorf("%d devices, want 1", n)
	}
	clk.add(11 * time.Minute)
	r := call(t, "POST", s.URL()+"/device/register", keyA, body(a.ID, strings.Repeat("cd", 16), "raspberrypi3"))
	if r.status != 401 {
		t.Errorf("expired provisioning key: status %d, want 401", r.status)
	}
}

func postKey(t *testing.T, s *Server, appID int64, expiry time.Time) string {
	t.Helper()
	body := `{"actorType":"application","actorTypeId":` + jsonOf(t, appID) +
		`,"roles":["provisioning-api-key"],"expiryDate":"` + expiry.UTC().Format(time.RFC3339) + `"}`
	r := call(t, "POST", s.URL()+"/api-key/v2/", userToken, body)
	var key string
	if r.status != 200 || json.Unmarshal([]byte(r.body), &key) != nil {
		t.Fatalf("provisioning key: %d %s", r.status, r.body)
	}
	return key
}

// registered registers a device with uuid in app over HTTP and returns its id.
func registered(t *testing.T, s *Server, app App, uuid string) int64 {
	t.Helper()
	key := provisioningKey(t, s, app.ID)
	r := call(t, "POST", s.URL()+"/device/register", key,
		`{"application":`+jsonOf(t, app.ID)+`,"uuid":"`+uuid+`","device_type":"`+app.DeviceType+`"}`)
	var got struct {
		ID int64 `json:"id"`
	}
	if r.status != 201 || json.Unmarshal([]byte(r.body), &got) != nil {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	return got.ID
}

func TestDownloadConfigAndDeviceKey(t *testing.T) {
	s, a, _ := seeded(t, Config{})
	id := registered(t, s, a, strings.Repeat("12", 16))
	cfgBody := `{"appId":` + jsonOf(t, a.ID) + `,"version":"2.26.0","network":"ethernet","appUpdatePollInterval":10,"deviceType":"raspberrypi3"}`
	r := call(t, "POST", s.URL()+"/download-config", userToken, cfgBody)
	if r.status != 200 {
		t.Fatalf("download-config: %d %s", r.status, r.body)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(r.body), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["apiKey"] == "" || cfg["apiKey"] == nil || cfg["deviceType"] != "raspberrypi3" ||
		cfg["applicationId"] != float64(a.ID) || cfg["appUpdatePollInterval"] != float64(600000) {
		t.Errorf("config %v", cfg)
	}
	if cfg["apiEndpoint"] != s.URL() {
		t.Errorf("apiEndpoint %v, want the URL the config came from, %s", cfg["apiEndpoint"], s.URL())
	}
	tests := []struct {
		name, path, token, body string
		status                  int
	}{
		{"config without version", "/download-config", userToken, `{"appId":` + jsonOf(t, a.ID) + `,"network":"ethernet"}`, 400},
		{"config for unknown app", "/download-config", userToken, `{"appId":1,"version":"2.26.0","network":"ethernet"}`, 404},
		{"config without token", "/download-config", "", cfgBody, 401},
		{"device key", "/api-key/device/" + jsonOf(t, id) + "/device-key", userToken, `{}`, 200},
		{"device key, empty body", "/api-key/device/" + jsonOf(t, id) + "/device-key", userToken, ``, 200},
		{"device key, unknown device", "/api-key/device/1/device-key", userToken, `{}`, 404},
		{"config sent as text/plain", "/download-config", userToken, "text:" + cfgBody, 400},
		{"device key without token", "/api-key/device/" + jsonOf(t, id) + "/device-key", "", `{}`, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, "POST", s.URL()+tt.path, tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
			var key string
			if r.status == 200 && strings.Contains(tt.path, "device-key") &&
				(json.Unmarshal([]byte(r.body), &key) != nil || key == "") {
				t.Fatalf("device key is not a JSON string: %s", r.body)
			}
		})
	}
}

func deviceQuery(uuid string) string {
	return "/v7/device?$select=id,uuid,is_online,api_heartbeat_state,last_connectivity_event&$filter=uuid%20eq%20'" + uuid + "'"
}

type deviceRows struct {
	D []struct {
		ID        int64   `json:"id"`
		UUID      string  `json:"uuid"`
		IsOnline  bool    `json:"is_online"`
		Heartbeat string  `json:"api_heartbeat_state"`
		Last      *string `json:"last_connectivity_event"`
	} `json:"d"`
}

func onlineOverHTTP(t *testing.T, s *Server, uuid string) (found, online bool) {
	t.Helper()
	r := call(t, "GET", s.URL()+deviceQuery(uuid), userToken, "")
	var rows deviceRows
	if r.status != 200 || json.Unmarshal([]byte(r.body), &rows) != nil || len(rows.D) > 1 {
		t.Fatalf("device query: %d %s", r.status, r.body)
	}
	if len(rows.D) == 0 {
		return false, false
	}
	d := rows.D[0]
	// Online is either signal; a heartbeat has a time.
	online = d.IsOnline || d.Heartbeat == "online"
	if d.UUID != uuid || d.ID == 0 || (d.Heartbeat == "online" && d.Last == nil) {
		t.Fatalf("device row %s", r.body)
	}
	return true, online
}

// report sends a supervisor state report for uuid with key.
func report(t *testing.T, s *Server, key, body string) reply {
	t.Helper()
	return call(t, "PATCH", s.URL()+"/device/v3/state", key, body)
}

func state(uuid string) string {
	return `{"` + uuid + `":{"status":"Idle","os_version":"balenaOS 2.113.0","api_port":48484}}`
}

func TestOnlineOnlyByOwnReport(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, a, _ := seeded(t, Config{Now: clk.now})
	uuid, other := strings.Repeat("9f", 16), strings.Repeat("8e", 16)
	if found, _ := onlineOverHTTP(t, s, uuid); found {
		t.Fatal("device found before it registered")
	}
	key := registeredWithKey(t, s, a, uuid)
	otherKey := registeredWithKey(t, s, a, other)
	clk.add(24 * time.Hour) // no timer brings a device online
	if _, online := onlineOverHTTP(t, s, uuid); online {
		t.Fatal("online a day after registering without a report")
	}
	tests := []struct {
		name, key, body string
		status          int
	}{
		{"no key", "", state(uuid), 401},
		{"user token", userToken, state(uuid), 401},
		{"unknown key", strings.Repeat("0", 32), state(uuid), 401},
		{"another device's key", otherKey, state(uuid), 401},
		{"own key, other UUID too", key, state(uuid)[:len(state(uuid))-1] + `,"` + other + `":{}}`, 401},
		{"unknown UUID", key, state(strings.Repeat("77", 16)), 401},
		{"empty body", key, `{}`, 400},
		{"state not an object", key, `{"` + uuid + `":"up"}`, 400},
		{"not JSON", key, `{"` + uuid, 400},
		{"sent as text/plain", key, "text:" + state(uuid), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := report(t, s, tt.key, tt.body); r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
			if _, online := onlineOverHTTP(t, s, uuid); online {
				t.Fatal("online after a refused report")
			}
		})
	}
	if r := report(t, s, key, state(uuid)); r.status != 200 {
		t.Fatalf("own report: %d %s", r.status, r.body)
	}
	if _, online := onlineOverHTTP(t, s, uuid); !online {
		t.Fatal("not online after its own report")
	}
	if _, online := onlineOverHTTP(t, s, other); online {
		t.Fatal("the other device came online too")
	}
	d, _ := s.Device(uuid)
	if d.Reports != 1 || !strings.Contains(d.LastState, "balenaOS 2.113.0") || !d.ReportedAt.Equal(clk.now()) {
		t.Errorf("device after report: %+v", d)
	}
	if s.Calls(RouteStateReport) != len(tests)+1 {
		t.Errorf("%d state reports counted, want %d", s.Calls(RouteStateReport), len(tests)+1)
	}
}

// registeredWithKey registers uuid in app over HTTP with a device API key
// of its own, as the SDK does, and returns the key.
func registeredWithKey(t *testing.T, s *Server, app App, uuid string) string {
	t.Helper()
	key := strings.Repeat("k", 8) + uuid[:24]
	r := call(t, "POST", s.URL()+"/device/register", provisioningKey(t, s, app.ID),
		`{"application":`+jsonOf(t, app.ID)+`,"uuid":"`+uuid+`","device_type":"`+app.DeviceType+`","api_key":"`+key+`"}`)
	var got struct {
		APIKey string `json:"api_key"`
	}
	if r.status != 201 || json.Unmarshal([]byte(r.body), &got) != nil || got.APIKey != key {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	return key
}

func TestFaultInjection(t *testing.T) {
	s, _, _ := seeded(t, Config{})
	s.FailNext(503, 429, 500)
	want := []int{503, 429, 500, 200}
	for i, w := range want {
		r := call(t, "GET", s.URL()+"/actor/v1/whoami", userToken, "")
		if r.status != w {
			t.Fatalf("request %d: status %d, want %d", i, r.status, w)
		}
		if w == 429 && r.header.Get("Retry-After") != "1" {
			t.Errorf("429 without Retry-After: %v", r.header)
		}
	}
	s.SetFaults(1, 502, 30*time.Millisecond)
	start := time.Now()
	r := call(t, "GET", s.URL()+"/actor/v1/whoami", userToken, "")
	if r.status != 502 || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("rate fault: status %d after %v", r.status, time.Since(start))
	}
	if s.Faults() != 4 || s.Calls(RouteWhoami) != 5 {
		t.Errorf("faults %d calls %d, want 4 and 5", s.Faults(), s.Calls(RouteWhoami))
	}
	s.SetFaults(0, 0, 0)
	if r := call(t, "GET", s.URL()+"/actor/v1/whoami", userToken, ""); r.status != 200 {
		t.Fatalf("faults off: status %d", r.status)
	}
}

func TestAddDevice(t *testing.T) {
	s, a, _ := seeded(t, Config{})
	uuid := strings.Repeat("5e", 16)
	d, key, err := s.AddDevice("OPS/fleet-one", uuid)
	if err != nil || d.AppID != a.ID || d.UUID != uuid || key == "" {
		t.Fatalf("AddDevice = %+v, %q, %v", d, key, err)
	}
	if found, online := onlineOverHTTP(t, s, uuid); !found || online {
		t.Fatalf("added device: found %v online %v; want found, offline", found, online)
	}
	if r := report(t, s, key, state(uuid)); r.status != 200 {
		t.Fatalf("report with the added device's key: %d %s", r.status, r.body)
	}
	if _, online := onlineOverHTTP(t, s, uuid); !online {
		t.Fatal("added device not online after its report")
	}
	tests := []struct{ name, app, uuid string }{
		{"duplicate", "ops/fleet-one", uuid},
		{"unknown app", "ops/none", strings.Repeat("6e", 16)},
		{"bad uuid", "ops/fleet-one", "XYZ"},
	}
	for _, tt := range tests {
		if _, _, err := s.AddDevice(tt.app, tt.uuid); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if len(s.Devices()) != 1 {
		t.Errorf("%d devices, want 1", len(s.Devices()))
	}
}

func TestParseAppSpec(t *testing.T) {
	tests := []struct {
		in, slug, dt string
		ok           bool
	}{
		{"ops/fleet:raspberrypi3", "ops/fleet", "raspberrypi3", true},
		{" ops/fleet:intel-nuc ", "ops/fleet", "intel-nuc", true},
		{"fleet:raspberrypi3", "", "", false},
		{"ops/fleet", "", "", false},
		{"ops/fleet:", "", "", false},
		{"/fleet:x", "", "", false},
		{"a/b/c:x", "", "", false},
	}
	for _, tt := range tests {
		slug, dt, err := ParseAppSpec(tt.in)
		if (err == nil) != tt.ok || slug != tt.slug || dt != tt.dt {
			t.Errorf("ParseAppSpec(%q) = %q, %q, %v", tt.in, slug, dt, err)
		}
	}
}

func TestConfiguredAPIEndpoint(t *testing.T) {
	// A VM reaches the host at another address than the worker does.
	s, a, _ := seeded(t, Config{APIEndpoint: "http://10.0.2.2:8080"})
	r := call(t, "POST", s.URL()+"/download-config", userToken,
		`{"appId":`+jsonOf(t, a.ID)+`,"version":"2.26.0","network":"ethernet"}`)
	var cfg struct {
		APIEndpoint string `json:"apiEndpoint"`
	}
	if r.status != 200 || json.Unmarshal([]byte(r.body), &cfg) != nil || cfg.APIEndpoint != "http://10.0.2.2:8080" {
		t.Fatalf("download-config: %d %s", r.status, r.body)
	}
}
