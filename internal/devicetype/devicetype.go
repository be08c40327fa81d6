// Package devicetype names the hardware balena-migrate runs on with balena's
// device-type slugs, and reads the device type an image is tagged for.
//
// Raspberry Pi models come from the revision code in /proc/cpuinfo (the
// authoritative source, including on boards whose device tree is edited) or
// from /proc/device-tree/model; BeagleBones from the device-tree model; PCs
// from the machine name uname reports and whether they booted through UEFI.
package devicetype

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknown marks hardware this tool does not know how to migrate.
var ErrUnknown = errors.New("unsupported device")

// Device is the detected hardware.
type Device struct {
	// Name is for humans: "Raspberry Pi 3 Model B", "UEFI PC".
	Name string
	// Slugs are the balena device types whose images boot on this device,
	// the preferred one first.
	Slugs []string
	// Family selects stage 1's boot setup.
	Family Family
}

// Family groups devices whose one-shot boot into stage 2 is set up the same way.
type Family int

// Boot-setup families.
const (
	// FamilyPC boots through grub (BIOS or UEFI): a one-shot grub entry.
	FamilyPC Family = iota + 1
	// FamilyRaspberryPi: an initramfs line in config.txt.
	FamilyRaspberryPi
	// FamilyBeagleBone: u-boot's uEnv.txt names initrd.img-<release>.
	FamilyBeagleBone
	// FamilyExtlinux: u-boot reading extlinux.conf; stage 1 has no boot
	// setup for it yet, so such a board is known but not migrated.
	FamilyExtlinux
)

func (f Family) String() string {
	switch f {
	case FamilyPC:
		return "pc"
	case FamilyRaspberryPi:
		return "raspberrypi"
	case FamilyBeagleBone:
		return "beaglebone"
	case FamilyExtlinux:
		return "extlinux"
	}
	return "unknown"
}

// Accepts reports whether an image for slug (or one of its aliases) boots on d.
func (d Device) Accepts(slug string) bool {
	if t, ok := Lookup(slug); ok {
		slug = t.Slug
	}
	for _, s := range d.Slugs {
		if s == slug {
			return true
		}
	}
	return false
}

// Inputs are the raw facts detection reads; Probe lists the commands that
// collect them on a device.
type Inputs struct {
	Machine string // uname -m
	CPUInfo string // /proc/cpuinfo
	DTModel string // /proc/device-tree/model (may end in NUL)
	EFI     bool   // /sys/firmware/efi exists: the system booted through UEFI
}

// Detect maps the facts to a device and the device types whose images boot
// on it, the preferred one first.
func Detect(in Inputs) (Device, error) {
	model := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(in.DTModel), "\x00"))
	switch in.Machine {
	case "x86_64":
		if in.EFI {
			// generic-amd64 is GPT/UEFI only; the MBR images boot on UEFI too.
			return Device{Name: "UEFI PC", Slugs: []string{"generic-amd64", "genericx86-64-ext", "intel-nuc", "genericx86-64"}, Family: FamilyPC}, nil
		}
		return Device{Name: "BIOS PC", Slugs: []string{"genericx86-64-ext", "intel-nuc", "genericx86-64"}, Family: FamilyPC}, nil
	case "i686", "i586", "i386":
		return Device{Name: "32 bit x86 PC", Slugs: []string{"intel-core2-32"}, Family: FamilyPC}, nil
	case "armv6l", "armv7l", "aarch64":
	default:
		return Device{}, fmt.Errorf("%w: architecture %q: balena-migrate runs on x86_64, i686, armv6l, armv7l and aarch64", ErrUnknown, in.Machine)
	}
	if strings.Contains(model, "Beagle") {
		return beagle(model)
	}
	if rev, ok := cpuinfoField(in.CPUInfo, "Revision"); ok && (strings.HasPrefix(model, "Raspberry Pi") || model == "" && isBCM(in.CPUInfo)) {
		if d, err := PiFromRevision(rev, in.Machine); err == nil {
			return d, nil
		}
	}
	if strings.HasPrefix(model, "Raspberry Pi") {
		return PiFromModel(model, in.Machine)
	}
	if in.Machine == "aarch64" && in.EFI {
		return Device{Name: "UEFI ARM machine", Slugs: []string{"generic-aarch64"}, Family: FamilyPC}, nil
	}
	if model == "" {
		model = "no /proc/device-tree/model"
	}
	return Device{}, fmt.Errorf("%w: %s board (%s): on ARM only Raspberry Pis, BeagleBones and UEFI aarch64 machines are supported", ErrUnknown, in.Machine, model)
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

// beagle reads the device-tree model of a BeagleBoard.org board. The most
// specific name is tested first: "Green Wireless" contains "Green".
func beagle(model string) (Device, error) {
	for _, b := range []struct {
		match, slug string
		fam         Family
	}{
		{"BeagleBone Green Wireless", "beaglebone-green-wifi", FamilyBeagleBone},
		{"BeagleBone Green Gateway", "beaglebone-green-gateway", FamilyBeagleBone},
		{"BeagleBone Green", "beaglebone-green", FamilyBeagleBone},
		{"BeagleBone Black", "beaglebone-black", FamilyBeagleBone},
		{"PocketBeagle", "beaglebone-pocket", FamilyBeagleBone},
		{"BeagleBone AI-64", "beaglebone-ai64", FamilyExtlinux},
		{"BeaglePlay", "beagleplay", FamilyExtlinux},
	} {
		if strings.Contains(model, b.match) {
			if b.match == "BeagleBone Black" && strings.Contains(model, "Wireless") {
				break // no balena type for the Black Wireless
			}
			return Device{Name: model, Slugs: []string{b.slug}, Family: b.fam}, nil
		}
	}
	return Device{}, fmt.Errorf("%w: %q: the supported BeagleBoards are BeagleBone Black, Green, Green Wireless, Green Gateway, PocketBeagle, BeagleBone AI-64 and BeaglePlay", ErrUnknown, model)
}

func splitWords(name string) []string {
	return strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '.' || r == '_' || r == '/' || r == '+' })
}

func joinWords(w []string) string { return strings.Join(w, "-") }
