package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEveryDefinitionFillsItsField gives each setting a value of its kind
// and checks the typed field it names changed to that value.
func TestEveryDefinitionFillsItsField(t *testing.T) {
	sample := map[Kind]struct {
		raw  string
		want any
	}{
		String:  {"value-1", "value-1"},
		Port:    {"2222", 2222},
		Seconds: {"90", 90 * time.Second},
		Count:   {"7", 7},
		Bool:    {"yes", true},
		Host:    {"gw-0001.example.net", "gw-0001.example.net"},
	}
	for _, d := range defs {
		if d.field == nil {
			t.Errorf("%s names no typed field", d.Name)
			continue
		}
		raw, want := sample[d.Kind].raw, sample[d.Kind].want
		if d.Kind == Enum {
			raw, want = d.Enum[len(d.Enum)-1], d.Enum[len(d.Enum)-1]
		}
		// Settings with a shape of their own.
		shaped := map[string]string{Window: "22:00-05:00", TZ: "UTC+01:00", Waves: "1,10,100%", MaxFail: "10%,stage2=0", HTTP: "127.0.0.1:9110"}
		if v, ok := shaped[d.Name]; ok {
			raw, want = v, v
		}
		s, err := Resolve(d.Bins[0], Layer{Source: "test", Values: map[string]string{d.Name: raw}})
		if err != nil {
			t.Errorf("%s=%s: %v", d.Name, raw, err)
			continue
		}
		got := reflect.ValueOf(d.field(s)).Elem().Interface()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s=%s filled %v, want %v", d.Name, raw, got, want)
		}
	}
}

// TestRolloutSettingsRefuseBadValues: a value the worker would refuse is
// refused when the settings are read, naming the setting.
func TestRolloutSettingsRefuseBadValues(t *testing.T) {
	for name, raw := range map[string]string{Window: "22-5", TZ: "Mars/Olympus", Waves: "10,1,100%", MaxFail: "ten", HTTP: "nowhere", Group: "-site", MaxPerGroup: "0"} {
		d, _ := lookup(name)
		_, err := Resolve(d.Bins[0], Layer{Source: "test", Values: map[string]string{name: raw}})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v", name, raw, err)
		}
	}
}

func TestTypedDefaultsAndUnitOverride(t *testing.T) {
	s, err := Resolve(Migrate, Layer{Source: "test", Values: map[string]string{SSHHost: "10.0.0.5", KnownHosts: "~/kh"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Migrate.TxTimeout != 1200*time.Second || s.Unit.SSHPort != 22 || s.SSH.HostKeyPolicy != "accept-new" {
		t.Errorf("defaults: %+v %+v", s.Migrate, s.Unit)
	}
	if s.SSH.KnownHosts == "~/kh" {
		t.Error("~ not expanded in a path setting")
	}
	u, err := s.ForUnit(map[string]string{SSHHost: "10.0.0.6", TxTimeout: "5m"}, "unit-a")
	if err != nil {
		t.Fatal(err)
	}
	if u.Unit.SSHHost != "10.0.0.6" || u.Migrate.TxTimeout != 5*time.Minute || s.Unit.SSHHost != "10.0.0.5" {
		t.Errorf("unit layer: %q %v (worker's now %q)", u.Unit.SSHHost, u.Migrate.TxTimeout, s.Unit.SSHHost)
	}
}
