package balena

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
)

// DeviceType is a device type as balena lists it (Cloud.DeviceTypes).
type DeviceType struct {
	Slug string
	Name string
	// Arch is its CPU architecture as balena names it: amd64, aarch64,
	// armv7hf, rpi, i386 …
	Arch string
	// Aliases are the other names balena takes for it at registration
	// (nuc for intel-nuc).
	Aliases []string
}

// archRuns lists the architectures whose releases a device of an
// architecture runs besides its own, as balena's SDK decides it
// (models.os.isArchitectureCompatibleWith, which its device registration
// applies). The API server itself registers any known type into any fleet.
var archRuns = map[string][]string{
	"aarch64": {"armv7hf", "rpi"},
	"armv7hf": {"rpi"},
}

// ArchRuns reports whether a device of CPU architecture device runs the
// releases of a fleet of architecture fleet.
func ArchRuns(device, fleet string) bool {
	return device == fleet || slices.Contains(archRuns[device], fleet)
}

// FindDeviceType finds slug among known by its slug or an alias, as
// balena resolves the device_type of a registration.
func FindDeviceType(known []DeviceType, slug string) (DeviceType, bool) {
	for _, t := range known {
		if t.Slug == slug || slices.Contains(t.Aliases, slug) {
			return t, true
		}
	}
	return DeviceType{}, false
}

// CheckDeviceType says whether devices of type slug can join a fleet of
// type fleetType, given the types balena knows: an ErrNotFound error when
// balena knows no such type (it refuses the registration with 404
// "Unknown device type"), an ErrInvalid one when the device could not run
// the fleet's releases. Both say what to use instead.
func CheckDeviceType(op string, known []DeviceType, fleetType, slug string) error {
	dt, ok := FindDeviceType(known, slug)
	if !ok {
		return &Error{Op: op, Class: ErrNotFound, Msg: fmt.Sprintf(
			"balena knows no device type %q (retired, renamed or misspelt)%s", slug, instead(known, slug))}
	}
	if fleetType == "" {
		return nil
	}
	ft, ok := FindDeviceType(known, fleetType)
	if !ok || ArchRuns(dt.Arch, ft.Arch) {
		return nil
	}
	return &Error{Op: op, Class: ErrInvalid, Msg: fmt.Sprintf(
		"devices of type %s (%s) cannot run the releases of a fleet of type %s (%s): migrate it into a fleet of an architecture it runs, or use an image for a type of the fleet's architecture",
		dt.Slug, dt.Arch, ft.Slug, ft.Arch)}
}

// instead suggests the types balena knows that boot the way slug's
// images boot on the same architecture (genericx86-64 → genericx86-64-ext),
// as far as balena-migrate's own table knows slug.
func instead(known []DeviceType, slug string) string {
	old, ok := devicetype.Lookup(slug)
	if !ok {
		return ": give a type `balena device-type list --all` shows"
	}
	var alt []string
	for _, t := range devicetype.Types() {
		if t.Arch == old.Arch && t.Boot == old.Boot && t.Slug != old.Slug {
			if _, ok := FindDeviceType(known, t.Slug); ok {
				alt = append(alt, t.Slug)
			}
		}
	}
	if len(alt) == 0 {
		return ": give a type `balena device-type list --all` shows"
	}
	return fmt.Sprintf(": use an image for %s, which balena knows and which boots as %s did", strings.Join(alt, " or "), slug)
}
