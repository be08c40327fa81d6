package balena

import (
	"errors"
	"strings"
	"testing"
)

func TestArchRuns(t *testing.T) {
	tests := []struct {
		device, fleet string
		want          bool
	}{
		{"amd64", "amd64", true},
		{"aarch64", "armv7hf", true},
		{"aarch64", "rpi", true},
		{"armv7hf", "rpi", true},
		{"armv7hf", "aarch64", false},
		{"rpi", "armv7hf", false},
		{"amd64", "i386", false}, // balena's SDK does not let amd64 run i386 fleets
		{"amd64", "aarch64", false},
	}
	for _, tt := range tests {
		if got := ArchRuns(tt.device, tt.fleet); got != tt.want {
			t.Errorf("ArchRuns(%s, %s) = %v, want %v", tt.device, tt.fleet, got, tt.want)
		}
	}
}

func TestCheckDeviceType(t *testing.T) {
	// As open-balena-api lists them: no genericx86-64 (retired) there.
	known := []DeviceType{
		{Slug: "genericx86-64-ext", Arch: "amd64"},
		{Slug: "generic-amd64", Arch: "amd64"},
		{Slug: "intel-nuc", Arch: "amd64", Aliases: []string{"nuc"}},
		{Slug: "raspberrypi3", Arch: "armv7hf"},
		{Slug: "raspberrypi4-64", Arch: "aarch64"},
		{Slug: "raspberry-pi", Arch: "rpi", Aliases: []string{"raspberrypi"}},
	}
	tests := []struct {
		fleet, slug string
		class       error
		says        string
	}{
		{"genericx86-64-ext", "genericx86-64-ext", nil, ""},
		{"genericx86-64-ext", "generic-amd64", nil, ""},
		{"genericx86-64-ext", "nuc", nil, ""},
		{"raspberrypi3", "raspberrypi4-64", nil, ""},
		{"raspberry-pi", "raspberrypi3", nil, ""},
		{"", "raspberrypi3", nil, ""},                            // no fleet: the type alone
		{"some-board-balena-lists-not", "raspberrypi3", nil, ""}, // the fleet's type unlisted: not judged
		{"genericx86-64-ext", "genericx86-64", ErrNotFound, "use an image for genericx86-64-ext or intel-nuc"},
		{"", "genericx86-64", ErrNotFound, `no device type "genericx86-64"`},
		{"raspberrypi3", "no-such-board", ErrNotFound, "balena device-type list --all"},
		{"raspberrypi4-64", "raspberrypi3", ErrInvalid, "devices of type raspberrypi3 (armv7hf) cannot run the releases of a fleet of type raspberrypi4-64 (aarch64)"},
		{"genericx86-64-ext", "raspberrypi4-64", ErrInvalid, "cannot run"},
		{"raspberrypi3", "nuc", ErrInvalid, "type intel-nuc (amd64)"},
	}
	for _, tt := range tests {
		err := CheckDeviceType("check", known, tt.fleet, tt.slug)
		switch {
		case tt.class == nil && err != nil:
			t.Errorf("(%s, %s): %v, want nil", tt.fleet, tt.slug, err)
		case tt.class != nil && (!errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.says)):
			t.Errorf("(%s, %s): %v, want %v saying %q", tt.fleet, tt.slug, err, tt.class, tt.says)
		}
	}
}
