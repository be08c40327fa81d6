package fakebalena

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The real server (open-balena-api v49) registers any type its contracts
// hold into any fleet, an alias as the type it names, and answers a
// retired or unknown type with 404 "Unknown device type <slug>".
func TestRegisterDeviceTypes(t *testing.T) {
	s, app, _ := seeded(t, Config{}) // a raspberrypi3 fleet
	key := provisioningKey(t, s, app.ID)
	tests := []struct {
		deviceType string
		status     int
		stored     string // the type balena holds, or the 404's text
	}{
		{"raspberrypi3", 201, "raspberrypi3"},
		{"generic-amd64", 201, "generic-amd64"}, // another architecture: the API does not check
		{"nuc", 201, "intel-nuc"},
		{"genericx86-64", 404, `"Unknown device type genericx86-64"`},
		{"intel-core2-32", 404, `"Unknown device type intel-core2-32"`},
		{"no-such-board", 404, `"Unknown device type no-such-board"`},
	}
	for i, tt := range tests {
		uuid := strings.Repeat(string(rune('a'+i)), 32)
		body := `{"application":` + jsonOf(t, app.ID) + `,"uuid":"` + uuid + `","device_type":"` + tt.deviceType + `"}`
		r := call(t, "POST", s.URL()+"/device/register", key, body)
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.deviceType, r.status, tt.status, r.body)
			continue
		}
		if tt.status != 201 {
			if strings.TrimSpace(r.body) != tt.stored {
				t.Errorf("%s: body %s, want %s", tt.deviceType, r.body, tt.stored)
			}
			if _, ok := s.Device(uuid); ok {
				t.Errorf("%s: a device was registered", tt.deviceType)
			}
			continue
		}
		if d, ok := s.Device(uuid); !ok || d.DeviceType != tt.stored {
			t.Errorf("%s: device %+v (found %v), want type %s", tt.deviceType, d, ok, tt.stored)
		}
	}
}

func TestDeviceTypeListing(t *testing.T) {
	s, _, _ := seeded(t, Config{})
	r := call(t, "GET", s.URL()+"/v7/device_type?$select=slug,name&$expand="+deviceTypeExpand, userToken, "")
	var reply struct {
		D []struct {
			Slug string `json:"slug"`
			Arch []struct {
				Slug string `json:"slug"`
			} `json:"is_of__cpu_architecture"`
			Aliases []struct {
				Alias string `json:"is_referenced_by__alias"`
			} `json:"device_type_alias"`
		} `json:"d"`
	}
	if r.status != 200 || json.Unmarshal([]byte(r.body), &reply) != nil {
		t.Fatalf("listing: %d %s", r.status, r.body)
	}
	got := map[string]string{}
	for _, d := range reply.D {
		var names []string
		for _, a := range d.Aliases {
			names = append(names, a.Alias)
		}
		if len(d.Arch) != 1 || !slices.Contains(names, d.Slug) {
			t.Errorf("%s: arch %v aliases %v; want one arch and the slug among its aliases", d.Slug, d.Arch, names)
		}
		got[d.Slug] = d.Arch[0].Slug + " " + strings.Join(names, ",")
	}
	for slug, want := range map[string]string{"intel-nuc": "amd64 intel-nuc,nuc", "raspberrypi3": "armv7hf raspberrypi3",
		"raspberrypi4-64": "aarch64 raspberrypi4-64", "genericx86-64": "", "intel-core2-32": ""} {
		if got[slug] != want {
			t.Errorf("%s listed as %q, want %q", slug, got[slug], want)
		}
	}
	for _, q := range []string{"?$select=id", "?$filter=slug%20eq%20'x'", "?$expand=is_of__cpu_architecture"} {
		if r := call(t, "GET", s.URL()+"/v7/device_type"+q, userToken, ""); r.status != 400 {
			t.Errorf("%s: status %d, want 400", q, r.status)
		}
	}
	if r := call(t, "GET", s.URL()+"/v7/device_type", "nope", ""); r.status != 401 {
		t.Errorf("unknown token: status %d, want 401", r.status)
	}
}
