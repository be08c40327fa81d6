package balena

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Fleet is a fleet as CheckFleet found it.
type Fleet struct {
	ID         int64
	Slug       string // "org/name"
	DeviceType string // the fleet's default device type
	// OSVersionChecked is true when balena lists balenaOS releases for
	// the fleet's type and the version is one of them; false when it lists
	// none (openBalena keeps no OS releases), so the version was checked
	// for its form and by balena's config generation only.
	OSVersionChecked bool
}

// slugRE is an "org/name" fleet slug as balena makes them.
var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*$`)

// CheckFleetRef returns an ErrInvalid error for op when ref cannot name a
// fleet: an "org/name" slug, a numeric id or a bare name without slashes.
func CheckFleetRef(op, ref string) error {
	if err := CheckSetting(op, ref, SettingApp); err != nil {
		return err
	}
	ref = strings.TrimSpace(ref)
	if !strings.Contains(ref, "/") || slugRE.MatchString(strings.ToLower(ref)) {
		return nil
	}
	return &Error{Op: op, Class: ErrInvalid, Msg: fmt.Sprintf(
		"%q is not a fleet: give it as org/name (the slug the dashboard shows, e.g. myorg/gateways), its numeric id, or its bare name (%s)",
		ref, SettingApp)}
}

// versionRE is a balenaOS version as balena names its releases: 2.113.0,
// v2.113.0+rev1, 6.8.1, 2.108.25+rev3.prod.
var versionRE = regexp.MustCompile(`^v?([0-9]+)\.([0-9]+)\.([0-9]+)([-+.][0-9A-Za-z.+-]*)?$`)

// CheckOSVersion returns an ErrInvalid error for op when v is not a
// balenaOS version balena makes a config.json for (balena refuses 1.2.0
// and older).
func CheckOSVersion(op, v string) error {
	if err := CheckSetting(op, v, SettingVersion); err != nil {
		return err
	}
	m := versionRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return &Error{Op: op, Class: ErrInvalid, Msg: fmt.Sprintf(
			"%q is not a balenaOS version such as 6.8.1 or 2.113.0+rev1 (%s)", v, SettingVersion)}
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	patch, _ := strconv.Atoi(m[3])
	if major < 1 || (major == 1 && (minor < 2 || (minor == 2 && patch == 0))) {
		return &Error{Op: op, Class: ErrInvalid, Msg: fmt.Sprintf(
			"balenaOS %s is too old: balena makes no config.json for 1.2.0 and older (%s)", v, SettingVersion)}
	}
	return nil
}

// SameOSVersion says whether the version a setting gives and one balena
// lists (or a device reports, "balenaOS 6.8.1") name the same release: a
// leading "v", the "balenaOS " prefix and a ".prod"/".dev" variant are
// ignored, and a setting without "+revN" matches any revision.
func SameOSVersion(setting, listed string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		s = strings.TrimPrefix(s, "balenaOS ")
		s = strings.TrimPrefix(s, "v")
		s = strings.TrimSuffix(s, ".prod")
		s = strings.TrimSuffix(s, ".dev")
		return s
	}
	a, b := norm(setting), norm(listed)
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	base, _, _ := strings.Cut(b, "+")
	return !strings.Contains(a, "+") && a == base
}

// CheckFleetSettings is CheckFleetRef and, when version is given,
// CheckOSVersion: what CheckFleet refuses without asking balena.
func CheckFleetSettings(op, ref, version string) error {
	if err := CheckFleetRef(op, ref); err != nil {
		return err
	}
	if version == "" {
		return nil
	}
	return CheckOSVersion(op, version)
}
