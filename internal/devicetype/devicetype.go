// Package devicetype names the hardware balena-migrate runs on with balena's
// device-type slugs, and reads the device type an image is tagged for.
//
// Raspberry Pi models come from the revision code in /proc/cpuinfo (the
// authoritative source, including on boards whose device tree is edited) or
// from /proc/device-tree/model; BeagleBones from the device-tree model; PCs
// from the machine name uname reports.
package devicetype

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnknown marks hardware this tool does not know how to migrate.
var ErrUnknown = errors.New("unsupported device")

// Device is the detected hardware.
type Device struct {
	// Name is for humans: "Raspberry Pi 3 Model B", "x86_64 PC".
	Name string
	// Slugs are the balena device types whose images boot on this device,
	// the preferred one first.
	Slugs []string
	// Family selects the boot setup: FamilyRaspberryPi, FamilyBeagleBone, FamilyPC.
	Family Family
}

// Family groups devices that boot the same way.
type Family int

// Boot families.
const (
	FamilyPC Family = iota + 1
	FamilyRaspberryPi
	FamilyBeagleBone
)

func (f Family) String() string {
	switch f {
	case FamilyPC:
		return "pc"
	case FamilyRaspberryPi:
		return "raspberrypi"
	case FamilyBeagleBone:
		return "beaglebone"
	}
	return "unknown"
}

// Accepts reports whether an image for slug boots on d.
func (d Device) Accepts(slug string) bool {
	for _, s := range d.Slugs {
		if s == slug {
			return true
		}
	}
	return false
}

// Inputs are the raw facts detection reads.
type Inputs struct {
	Machine string // uname -m
	CPUInfo string // /proc/cpuinfo
	DTModel string // /proc/device-tree/model (may end in NUL)
}

// Detect maps the facts to a device.
func Detect(in Inputs) (Device, error) {
	model := strings.TrimRight(strings.TrimSpace(in.DTModel), "\x00")
	switch in.Machine {
	case "x86_64":
		return Device{Name: "x86_64 PC", Slugs: []string{"genericx86-64", "genericx86-64-ext", "intel-nuc"}, Family: FamilyPC}, nil
	case "i686", "i586", "i386":
		return Device{Name: "32 bit x86 PC", Slugs: []string{"intel-core2-32"}, Family: FamilyPC}, nil
	case "armv6l", "armv7l", "aarch64":
	default:
		return Device{}, fmt.Errorf("%w: architecture %q: balena-migrate runs on x86_64, i686, armv6l, armv7l and aarch64", ErrUnknown, in.Machine)
	}
	if strings.Contains(model, "BeagleBone") {
		return beagleBone(model)
	}
	if rev, ok := cpuinfoField(in.CPUInfo, "Revision"); ok && (strings.HasPrefix(model, "Raspberry Pi") || model == "" && isBCM(in.CPUInfo)) {
		if d, err := PiFromRevision(rev); err == nil {
			return d, nil
		}
	}
	if strings.HasPrefix(model, "Raspberry Pi") {
		return PiFromModel(model)
	}
	if model == "" {
		model = "no /proc/device-tree/model"
	}
	return Device{}, fmt.Errorf("%w: %s board (%s): only Raspberry Pi and BeagleBone Green/Black are supported on ARM", ErrUnknown, in.Machine, model)
}

func isBCM(cpuinfo string) bool {
	hw, _ := cpuinfoField(cpuinfo, "Hardware")
	return strings.HasPrefix(hw, "BCM")
}

func cpuinfoField(cpuinfo, key string) (string, bool) {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func beagleBone(model string) (Device, error) {
	switch {
	case strings.Contains(model, "BeagleBone Green Wireless"):
		return Device{Name: model, Slugs: []string{"beaglebone-green-wifi"}, Family: FamilyBeagleBone}, nil
	case strings.Contains(model, "BeagleBone Green"):
		return Device{Name: model, Slugs: []string{"beaglebone-green"}, Family: FamilyBeagleBone}, nil
	case strings.Contains(model, "BeagleBone Black"):
		return Device{Name: model, Slugs: []string{"beaglebone-black"}, Family: FamilyBeagleBone}, nil
	}
	return Device{}, fmt.Errorf("%w: %q: only BeagleBone Green, Green Wireless and Black are supported", ErrUnknown, model)
}

// gen returns the slugs of images that boot on a Raspberry Pi generation,
// the preferred one first.
func gen(g string) []string {
	switch g {
	case "pi1":
		return []string{"raspberry-pi"}
	case "pi2":
		return []string{"raspberry-pi2"}
	case "pi3":
		return []string{"raspberrypi3", "raspberrypi3-64"}
	case "pi0w2":
		return []string{"raspberrypi0-2w-64", "raspberrypi3", "raspberrypi3-64"}
	case "cm3":
		return []string{"raspberrypi3", "raspberrypi3-64", "fincm3"}
	case "pi4":
		return []string{"raspberrypi4-64"}
	case "pi400":
		return []string{"raspberrypi400-64", "raspberrypi4-64"}
	case "cm4":
		return []string{"raspberrypicm4-ioboard", "raspberrypi4-64"}
	case "pi5":
		return []string{"raspberrypi5"}
	}
	return nil
}

// piBoard names a new-style revision board type and its generation.
func piBoard(typ uint32) (name, generation string, ok bool) {
	boards := map[uint32][2]string{
		0x00: {"Raspberry Pi Model A", "pi1"}, 0x01: {"Raspberry Pi Model B", "pi1"},
		0x02: {"Raspberry Pi Model A+", "pi1"}, 0x03: {"Raspberry Pi Model B+", "pi1"},
		0x04: {"Raspberry Pi 2 Model B", "pi2"}, 0x06: {"Raspberry Pi Compute Module 1", "pi1"},
		0x08: {"Raspberry Pi 3 Model B", "pi3"}, 0x09: {"Raspberry Pi Zero", "pi1"},
		0x0a: {"Raspberry Pi Compute Module 3", "cm3"}, 0x0c: {"Raspberry Pi Zero W", "pi1"},
		0x0d: {"Raspberry Pi 3 Model B+", "pi3"}, 0x0e: {"Raspberry Pi 3 Model A+", "pi3"},
		0x10: {"Raspberry Pi Compute Module 3+", "cm3"}, 0x11: {"Raspberry Pi 4 Model B", "pi4"},
		0x12: {"Raspberry Pi Zero 2 W", "pi0w2"}, 0x13: {"Raspberry Pi 400", "pi400"},
		0x14: {"Raspberry Pi Compute Module 4", "cm4"}, 0x15: {"Raspberry Pi Compute Module 4S", "cm4"},
		0x17: {"Raspberry Pi 5", "pi5"}, 0x18: {"Raspberry Pi Compute Module 5", "pi5"},
		0x19: {"Raspberry Pi 500", "pi5"},
	}
	b, ok := boards[typ]
	return b[0], b[1], ok
}

// PiFromRevision decodes a /proc/cpuinfo revision code (old style 0002–0015,
// or new style with bit 23 set; over-voltage and warranty bits are ignored).
func PiFromRevision(rev string) (Device, error) {
	code, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(rev), "0x"), 16, 32)
	if err != nil {
		return Device{}, fmt.Errorf("%w: Raspberry Pi revision %q is not hexadecimal", ErrUnknown, rev)
	}
	if code&(1<<23) == 0 {
		old := code & 0xffffff
		if old >= 0x2 && old <= 0x15 {
			return Device{Name: "Raspberry Pi 1", Slugs: gen("pi1"), Family: FamilyRaspberryPi}, nil
		}
		return Device{}, fmt.Errorf("%w: Raspberry Pi revision %q is not a known board", ErrUnknown, rev)
	}
	typ := uint32(code>>4) & 0xff
	name, g, ok := piBoard(typ)
	if !ok {
		return Device{}, fmt.Errorf("%w: Raspberry Pi revision %q (board type 0x%02x) is not a known board", ErrUnknown, rev, typ)
	}
	return Device{Name: name, Slugs: gen(g), Family: FamilyRaspberryPi}, nil
}

// PiFromModel reads a device-tree model such as "Raspberry Pi 3 Model B Rev 1.2".
func PiFromModel(model string) (Device, error) {
	model = strings.TrimRight(model, "\x00")
	name := model
	if i := strings.Index(name, " Rev "); i > 0 {
		name = name[:i]
	}
	pi := func(g string) (Device, error) {
		return Device{Name: name, Slugs: gen(g), Family: FamilyRaspberryPi}, nil
	}
	rest := strings.TrimPrefix(name, "Raspberry Pi ")
	switch {
	case strings.HasPrefix(rest, "Compute Module 5"), strings.HasPrefix(rest, "5"), strings.HasPrefix(rest, "500"):
		return pi("pi5")
	case strings.HasPrefix(rest, "400"):
		return pi("pi400")
	case strings.HasPrefix(rest, "Compute Module 4"):
		return pi("cm4")
	case strings.HasPrefix(rest, "4 "):
		return pi("pi4")
	case strings.HasPrefix(rest, "Compute Module 3"):
		return pi("cm3")
	case strings.HasPrefix(rest, "Zero 2"):
		return pi("pi0w2")
	case strings.HasPrefix(rest, "3 "):
		return pi("pi3")
	case strings.HasPrefix(rest, "2 "):
		return pi("pi2")
	case strings.HasPrefix(rest, "Zero"), strings.HasPrefix(rest, "Model"), strings.HasPrefix(rest, "Compute Module"):
		return pi("pi1")
	}
	return Device{}, fmt.Errorf("%w: %q is not a known Raspberry Pi model", ErrUnknown, model)
}

// tags maps every name tag an image file may carry to its slug. Legacy tags
// of the original tool are kept.
func tags() map[string]string {
	return map[string]string{
		"raspberry-pi": "raspberry-pi", "raspberry-pi1": "raspberry-pi", "raspberrypi": "raspberry-pi",
		"raspberry-pi2": "raspberry-pi2", "raspberrypi2": "raspberry-pi2",
		"raspberrypi3": "raspberrypi3", "raspberrypi3-64": "raspberrypi3-64",
		"raspberrypi0-2w-64": "raspberrypi0-2w-64", "fincm3": "fincm3",
		"raspberrypi4-64": "raspberrypi4-64", "raspberrypi400-64": "raspberrypi400-64",
		"raspberrypicm4-ioboard": "raspberrypicm4-ioboard", "raspberrypi5": "raspberrypi5",
		"beaglebone-green": "beaglebone-green", "beaglebone-green-wifi": "beaglebone-green-wifi",
		"beaglebone-black": "beaglebone-black",
		"genericx86-64":    "genericx86-64", "genericx86-64-ext": "genericx86-64-ext",
		"intel-nuc": "intel-nuc", "intel-core2-32": "intel-core2-32",
	}
}

// SlugFromName finds the device-type tag in an image file name such as
// "balena-cloud-app-raspberrypi3-2.26.0+rev1-dev-v8.0.0.img.zip". A tag counts
// only as a whole dash/dot/underscore-separated run of words; the longest
// such tag wins. ok is false when the name carries no tag.
func SlugFromName(name string) (slug string, ok bool) {
	words := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '.' || r == '_' || r == '/' || r == '+' })
	known := tags()
	best := ""
	for i := range words {
		for j := i + 1; j <= len(words) && j-i <= 4; j++ {
			cand := strings.Join(words[i:j], "-")
			if _, ok := known[cand]; ok && len(cand) > len(best) {
				best = cand
			}
		}
	}
	if best == "" {
		return "", false
	}
	return known[best], true
}
