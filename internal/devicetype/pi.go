package devicetype

import (
	"fmt"
	"strconv"
	"strings"
)

// piGen is a Raspberry Pi generation: boards whose images are interchangeable.
type piGen int

const (
	pi1 piGen = iota + 1
	pi2
	pi3
	pi0w2
	cm3
	pi4
	pi400
	cm4
	pi5
)

// slugs returns the types whose images boot on a generation, preferred
// first. Where a board runs both 32- and 64-bit balenaOS, the one matching
// the running system (aarch64 or not) comes first.
func (g piGen) slugs(aarch64 bool) []string {
	both := func(s32, s64 string, more ...string) []string {
		if aarch64 {
			return append([]string{s64, s32}, more...)
		}
		return append([]string{s32, s64}, more...)
	}
	switch g {
	case pi1:
		return []string{"raspberry-pi"}
	case pi2:
		return []string{"raspberry-pi2"}
	case pi3:
		return both("raspberrypi3", "raspberrypi3-64")
	case pi0w2:
		// balena builds a 64-bit type for the Zero 2 W; the Pi 3 images
		// carry its device tree too.
		return append([]string{"raspberrypi0-2w-64"}, both("raspberrypi3", "raspberrypi3-64")...)
	case cm3:
		return both("raspberrypi3", "raspberrypi3-64", "fincm3")
	case pi4:
		return []string{"raspberrypi4-64"}
	case pi400:
		return []string{"raspberrypi400-64", "raspberrypi4-64"}
	case cm4:
		return []string{"raspberrypicm4-ioboard", "raspberrypi4-64"}
	case pi5:
		return []string{"raspberrypi5"}
	}
	return nil
}

// piBoard names a new-style revision board type and its generation.
func piBoard(typ uint32) (name string, g piGen, ok bool) {
	type board struct {
		name string
		gen  piGen
	}
	boards := map[uint32]board{
		0x00: {"Raspberry Pi Model A", pi1}, 0x01: {"Raspberry Pi Model B", pi1},
		0x02: {"Raspberry Pi Model A+", pi1}, 0x03: {"Raspberry Pi Model B+", pi1},
		0x04: {"Raspberry Pi 2 Model B", pi2}, 0x06: {"Raspberry Pi Compute Module 1", pi1},
		0x08: {"Raspberry Pi 3 Model B", pi3}, 0x09: {"Raspberry Pi Zero", pi1},
		0x0a: {"Raspberry Pi Compute Module 3", cm3}, 0x0c: {"Raspberry Pi Zero W", pi1},
		0x0d: {"Raspberry Pi 3 Model B+", pi3}, 0x0e: {"Raspberry Pi 3 Model A+", pi3},
		0x10: {"Raspberry Pi Compute Module 3+", cm3}, 0x11: {"Raspberry Pi 4 Model B", pi4},
		0x12: {"Raspberry Pi Zero 2 W", pi0w2}, 0x13: {"Raspberry Pi 400", pi400},
		0x14: {"Raspberry Pi Compute Module 4", cm4}, 0x15: {"Raspberry Pi Compute Module 4S", cm4},
		0x17: {"Raspberry Pi 5", pi5}, 0x18: {"Raspberry Pi Compute Module 5", pi5},
		0x19: {"Raspberry Pi 500", pi5}, 0x1a: {"Raspberry Pi Compute Module 5 Lite", pi5},
	}
	b, ok := boards[typ]
	return b.name, b.gen, ok
}

// PiFromRevision decodes a /proc/cpuinfo revision code (old style 0002–0015,
// or new style with bit 23 set; over-voltage and warranty bits are ignored).
// machine is uname -m; it orders the 32- and 64-bit types.
func PiFromRevision(rev, machine string) (Device, error) {
	code, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(rev), "0x"), 16, 32)
	if err != nil {
		return Device{}, fmt.Errorf("%w: Raspberry Pi revision %q is not hexadecimal", ErrUnknown, rev)
	}
	if code&(1<<23) == 0 {
		old := code & 0xffffff
		if old >= 0x2 && old <= 0x15 {
			return piDevice("Raspberry Pi 1", pi1, machine), nil
		}
		return Device{}, fmt.Errorf("%w: Raspberry Pi revision %q is not a known board", ErrUnknown, rev)
	}
	typ := uint32(code>>4) & 0xff
	name, g, ok := piBoard(typ)
	if !ok {
		return Device{}, fmt.Errorf("%w: Raspberry Pi revision %q (board type 0x%02x) is not a known board", ErrUnknown, rev, typ)
	}
	return piDevice(name, g, machine), nil
}

func piDevice(name string, g piGen, machine string) Device {
	return Device{Name: name, Slugs: g.slugs(machine == "aarch64"), Family: FamilyRaspberryPi}
}

// PiFromModel reads a device-tree model such as "Raspberry Pi 3 Model B Rev 1.2".
func PiFromModel(model, machine string) (Device, error) {
	model = strings.TrimRight(model, "\x00")
	name := model
	if i := strings.Index(name, " Rev "); i > 0 {
		name = name[:i]
	}
	rest := strings.TrimPrefix(name, "Raspberry Pi ")
	for _, m := range []struct {
		prefix string
		gen    piGen
	}{
		{"Compute Module 5", pi5}, {"500", pi5}, {"5 ", pi5},
		{"400", pi400}, {"Compute Module 4", cm4}, {"4 ", pi4},
		{"Compute Module 3", cm3}, {"Zero 2", pi0w2}, {"3 ", pi3}, {"2 ", pi2},
		{"Zero", pi1}, {"Model", pi1}, {"Compute Module", pi1},
	} {
		if strings.HasPrefix(rest, m.prefix) {
			return piDevice(name, m.gen, machine), nil
		}
	}
	return Device{}, fmt.Errorf("%w: %q is not a known Raspberry Pi model", ErrUnknown, model)
}
