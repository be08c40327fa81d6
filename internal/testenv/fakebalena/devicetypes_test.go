package fakebalena

import "testing"

func TestCompatible(t *testing.T) {
	tests := []struct {
		fleet, dev string
		want       bool
	}{
		{"raspberrypi3", "raspberrypi3", true},
		{"raspberrypi3", "raspberrypi4-64", true}, // aarch64 runs armv7hf
		{"raspberrypi4-64", "raspberrypi3", false},
		{"raspberrypi3-64", "raspberrypi4-64", true},
		{"genericx86-64-ext", "generic-amd64", true},
		{"genericx86-64", "generic-amd64", true}, // the old name of the MBR type
		{"genericx86-64-ext", "raspberrypi4-64", false},
		{"raspberry-pi", "raspberrypi3", true},
		{"some-board", "some-board", true},
		{"some-board", "other-board", false},
	}
	for _, tt := range tests {
		if got := compatible(tt.fleet, tt.dev); got != tt.want {
			t.Errorf("compatible(%s, %s) = %v, want %v", tt.fleet, tt.dev, got, tt.want)
		}
	}
}
