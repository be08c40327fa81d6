package fakebalena

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDeviceNameAndTags(t *testing.T) {
	s, a, _ := seeded(t, Config{})
	uuid := strings.Repeat("4d", 16)
	id := registered(t, s, a, uuid)
	dev := "/v7/device(" + jsonOf(t, id) + ")"
	tag := func(key string) string {
		return `{"device":` + jsonOf(t, id) + `,"tag_key":"` + key + `","value":"v"}`
	}
	tests := []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"rename", "PATCH", dev, userToken, `{"device_name":"unit-007"}`, 200},
		{"rename without token", "PATCH", dev, "", `{"device_name":"x"}`, 401},
		{"empty name", "PATCH", dev, userToken, `{"device_name":""}`, 400},
		{"other field", "PATCH", dev, userToken, `{"is_online":true}`, 400},
		{"unknown device changes nothing", "PATCH", "/v7/device(1)", userToken, `{"device_name":"x"}`, 200},
		{"tag", "POST", "/v7/device_tag", userToken, tag("migrate.unit"), 201},
		{"same tag again", "POST", "/v7/device_tag", userToken, tag("migrate.unit"), 409},
		{"tag without key", "POST", "/v7/device_tag", userToken, tag(""), 400},
		{"tag of unknown device", "POST", "/v7/device_tag", userToken, `{"device":1,"tag_key":"k","value":"v"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := call(t, tt.method, s.URL()+tt.path, tt.token, tt.body); r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
		})
	}
	d, _ := s.Device(uuid)
	if d.Name != "unit-007" || len(d.Tags) != 1 || d.Tags["migrate.unit"] != "v" {
		t.Errorf("device %+v", d)
	}
	if s.Calls(RouteDevicePatch) != 5 || s.Calls(RouteDeviceTag) != 4 {
		t.Errorf("calls: patch %d tag %d", s.Calls(RouteDevicePatch), s.Calls(RouteDeviceTag))
	}
}

func TestDownloadConfigKeyExpiryAndType(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, a, _ := seeded(t, Config{Now: clk.now})
	expiry := clk.now().Add(10 * time.Minute).Format(time.RFC3339)
	body := func(dt, exp string) string {
		b := `{"appId":` + jsonOf(t, a.ID) + `,"version":"2.113.0","network":"ethernet","deviceType":"` + dt + `"`
		if exp != "" {
			b += `,"provisioningKeyName":"balena-migrate","provisioningKeyExpiryDate":"` + exp + `"`
		}
		return b + "}"
	}
	r := call(t, "POST", s.URL()+"/download-config", userToken, body("raspberrypi4-64", expiry))
	var cfg struct {
		APIKey     string `json:"apiKey"`
		DeviceType string `json:"deviceType"`
	}
	if r.status != 200 || json.Unmarshal([]byte(r.body), &cfg) != nil || cfg.DeviceType != "raspberrypi4-64" {
		t.Fatalf("config for the device's own type: %d %s", r.status, r.body)
	}
	for name, tt := range map[string]struct {
		body   string
		status int
	}{
		"retired type": {body("genericx86-64", expiry), 404},
		"past expiry":  {body("raspberrypi3", clk.now().Add(-time.Minute).Format(time.RFC3339)), 400},
		"bad expiry":   {body("raspberrypi3", "tomorrow"), 400},
	} {
		if r := call(t, "POST", s.URL()+"/download-config", userToken, tt.body); r.status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", name, r.status, tt.status, r.body)
		}
	}
	if n := s.UnexpiredProvisioningKeys(clk.now()); n != 1 {
		t.Fatalf("%d valid provisioning keys, want 1", n)
	}
	uuid := strings.Repeat("3c", 16)
	reg := `{"application":` + jsonOf(t, a.ID) + `,"uuid":"` + uuid + `","device_type":"raspberrypi4-64"}`
	clk.add(10 * time.Minute)
	if n := s.UnexpiredProvisioningKeys(clk.now()); n != 0 {
		t.Fatalf("%d provisioning keys valid after their expiry", n)
	}
	if r := call(t, "POST", s.URL()+"/device/register", cfg.APIKey, reg); r.status != 401 {
		t.Fatalf("register with the expired config key: %d, want 401", r.status)
	}
	// Without an expiry the key lives forever, as the real API does it.
	call(t, "POST", s.URL()+"/download-config", userToken, body("raspberrypi3", ""))
	clk.add(1000 * time.Hour)
	if n := s.UnexpiredProvisioningKeys(clk.now()); n != 1 {
		t.Fatalf("%d valid keys, want the one without expiry", n)
	}
	keys := s.ProvisioningKeys()
	if len(keys) != 2 || keys[0].Expires.IsZero() || !keys[1].Expires.IsZero() {
		t.Fatalf("keys %+v", keys)
	}
}
