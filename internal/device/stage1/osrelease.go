package stage1

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// OSRelease is the part of /etc/os-release stage 1 needs.
type OSRelease struct {
	ID, VersionID, PrettyName string
	IDLike                    []string
	// Codename is VERSION_CODENAME; Ubuntu and its derivatives also name
	// their Ubuntu base (UBUNTU_CODENAME), Debian derivatives their Debian
	// base (DEBIAN_CODENAME).
	Codename, UbuntuCodename, DebianCodename string
}

func parseOSRelease(data string) OSRelease {
	var r OSRelease
	for _, line := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		switch k {
		case "ID":
			r.ID = v
		case "ID_LIKE":
			r.IDLike = strings.Fields(v)
		case "VERSION_ID":
			r.VersionID = v
		case "PRETTY_NAME":
			r.PrettyName = v
		case "VERSION_CODENAME":
			r.Codename = v
		case "UBUNTU_CODENAME":
			r.UbuntuCodename = v
		case "DEBIAN_CODENAME":
			r.DebianCodename = v
		}
	}
	return r
}

// debianReleases are the supported Debian releases (Raspbian and Raspberry
// Pi OS number theirs the same way).
func debianReleases() map[string]string {
	return map[string]string{"9": "stretch", "10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}
}

// ubuntuReleases are the supported Ubuntu releases, LTS and interim.
func ubuntuReleases() map[string]string {
	return map[string]string{
		"14.04": "trusty", "16.04": "xenial", "18.04": "bionic", "18.10": "cosmic",
		"19.04": "disco", "19.10": "eoan", "20.04": "focal", "20.10": "groovy",
		"21.04": "hirsute", "21.10": "impish", "22.04": "jammy", "22.10": "kinetic",
		"23.04": "lunar", "23.10": "mantic", "24.04": "noble", "24.10": "oracular",
		"25.04": "plucky", "25.10": "questing", "26.04": "resolute",
	}
}

// supportedText is the supported list as the refusal names it.
const supportedText = "Debian 9–13, Ubuntu 14.04–26.04, Raspbian / Raspberry Pi OS 9–13 (bookworm, trixie), and their derivatives that name their Debian or Ubuntu base"

// supportedBase says which supported release r is or is based on, e.g.
// "Debian 13" or "Ubuntu 22.04"; ok is false for anything else.
func supportedBase(r OSRelease) (string, bool) {
	byCodename := func(releases map[string]string, codename string) (string, bool) {
		for v, c := range releases {
			if c == codename && codename != "" {
				return v, true
			}
		}
		return "", false
	}
	switch r.ID {
	case "debian", "raspbian":
		_, ok := debianReleases()[r.VersionID]
		return "Debian " + r.VersionID, ok
	case "ubuntu":
		_, ok := ubuntuReleases()[r.VersionID]
		return "Ubuntu " + r.VersionID, ok
	}
	// A derivative (Linux Mint, Pop!_OS, LMDE, ...) numbers its own
	// releases; its Debian or Ubuntu base decides.
	if slices.Contains(r.IDLike, "ubuntu") {
		if v, ok := byCodename(ubuntuReleases(), r.UbuntuCodename); ok {
			return "Ubuntu " + v, true
		}
	}
	if slices.Contains(r.IDLike, "debian") {
		for _, c := range []string{r.DebianCodename, r.Codename} {
			if v, ok := byCodename(debianReleases(), c); ok {
				return "Debian " + v, true
			}
		}
	}
	return "", false
}

// checkOS reads /etc/os-release and refuses systems stage 1 is not known to
// work on, unless the operator said NO_OS_CHECK.
func (r *run) checkOS() (OSRelease, error) {
	data, err := r.read("/etc/os-release")
	if err != nil {
		data, err = r.read("/usr/lib/os-release")
	}
	if err != nil {
		if r.cfg.NoOSCheck {
			r.log.Warn("NO_OS_CHECK: /etc/os-release is unreadable (%v); carrying on as told", err)
			return OSRelease{PrettyName: "unknown system"}, nil
		}
		return OSRelease{}, fmt.Errorf("%w: cannot read /etc/os-release: %w", ErrOS, err)
	}
	osr := parseOSRelease(string(data))
	if osr.ID == "balena-os" || osr.ID == "resin-os" {
		return osr, fmt.Errorf("%w: /etc/os-release says %s (%s): this device needs no migration", ErrAlreadyBalena, osr.ID, osr.PrettyName)
	}
	if osr.PrettyName == "" {
		osr.PrettyName = strings.TrimSpace(osr.ID + " " + osr.VersionID)
	}
	base, ok := supportedBase(osr)
	switch {
	case ok && base != "Debian "+osr.VersionID && base != "Ubuntu "+osr.VersionID:
		r.log.Info("%s is based on %s", osr.PrettyName, base)
	case !ok && r.cfg.NoOSCheck:
		r.log.Warn("NO_OS_CHECK: %s (ID=%s VERSION_ID=%s) is not a tested system; the OS check is skipped as told. Only initramfs-tools based systems can work: try --pretend first", osr.PrettyName, osr.ID, osr.VersionID)
	case !ok:
		id := osr.ID + " " + osr.VersionID
		if osr.VersionID == "" {
			id = osr.ID + " without VERSION_ID (testing/unstable?)"
		}
		return osr, fmt.Errorf("%w: OS %s (%s) is not supported: supported are %s; for another initramfs-tools based system, run with --no-os-check (NO_OS_CHECK=TRUE) at your own risk",
			ErrOS, strings.TrimSpace(id), osr.PrettyName, supportedText)
	}
	return osr, nil
}

// checkInitramfsTools refuses a system that builds its initramfs another way
// (dracut): stage 2 is started by an initramfs-tools hook and script.
func (f files) checkInitramfsTools() error {
	var missing []string
	if _, err := f.lookPath("mkinitramfs"); err != nil {
		missing = append(missing, "mkinitramfs")
	}
	for _, p := range []string{"/usr/share/initramfs-tools/hook-functions", "/etc/initramfs-tools/initramfs.conf"} {
		if !f.exists(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	other := ""
	if _, err := f.lookPath("dracut"); err == nil {
		other = "this system builds its initramfs with dracut; "
	}
	return fmt.Errorf("%w: %w: %sbalena-migrate needs initramfs-tools, but %s is missing: install the initramfs-tools package (apt install initramfs-tools; it replaces dracut) and try again",
		ErrOS, ErrMissingProg, other, strings.Join(missing, ", "))
}
