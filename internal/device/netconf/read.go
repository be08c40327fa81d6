package netconf

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Setup is everything the device's network stacks set up, as read from
// its files: the profiles in the order their sources are trusted (a
// NetworkManager file first, as NetworkManager's own words), what cannot
// be carried, and notes for the log saying what was read and what not.
type Setup struct {
	Profiles []*Profile
	Refused  []Refusal
	Notes    []string
	// wifiAddressing is what dhcpcd and systemd-networkd set up for
	// Wi-Fi interfaces, while reading.
	wifiAddressing []*Profile
}

// stack is one network stack: whether it is in use, and its reader.
type stack struct {
	name   string
	active func(fs.FS) bool
	read   func(fs.FS, *Setup)
}

// anyExists says whether one of the paths exists (a program installed).
func anyExists(paths ...string) func(fs.FS) bool {
	return func(fsys fs.FS) bool {
		for _, p := range paths {
			if _, err := fs.Stat(fsys, rel(p)); err == nil {
				return true
			}
		}
		return false
	}
}

// enabled says whether a systemd unit is enabled (linked into a target's
// wants directory).
func enabled(unit string) func(fs.FS) bool {
	return func(fsys fs.FS) bool {
		for _, dir := range []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"} {
			ms, _ := fs.Glob(fsys, rel(dir)+"/*.wants/"+unit)
			if len(ms) > 0 {
				return true
			}
		}
		return false
	}
}

// stacks are the network stacks, in the order their profiles are trusted.
func stacks() []stack {
	return []stack{
		{"NetworkManager", anyExists("/usr/sbin/NetworkManager", "/sbin/NetworkManager"), readNM},
		{"netplan", anyExists("/usr/sbin/netplan", "/usr/lib/systemd/system-generators/netplan", "/lib/systemd/system-generators/netplan"), readNetplan},
		{"ifupdown", anyExists("/usr/sbin/ifup", "/sbin/ifup"), readIfupdown},
		{"systemd-networkd", enabled("systemd-networkd.service"), readNetworkd},
		{"dhcpcd", anyExists("/usr/sbin/dhcpcd", "/sbin/dhcpcd"), readDhcpcd},
		{"wpa_supplicant", anyExists("/usr/sbin/wpa_supplicant", "/sbin/wpa_supplicant"), readWPA},
		{"connman", anyExists("/usr/sbin/connmand", "/sbin/connmand"), readConnman},
	}
}

// stackFiles are the files each stack reads, to say in the log that a
// stack which is not in use left files behind that are not carried.
var stackFiles = map[string][]string{
	"NetworkManager":   {"/etc/NetworkManager/system-connections/*"},
	"netplan":          {"/etc/netplan/*.yaml"},
	"ifupdown":         {"/etc/network/interfaces"},
	"systemd-networkd": {"/etc/systemd/network/*.network"},
	"dhcpcd":           {"/etc/dhcpcd.conf"},
	"wpa_supplicant":   {"/etc/wpa_supplicant/*.conf"},
	"connman":          {"/var/lib/connman/*/settings"},
}

// Read reads the setups of every network stack in use under fsys (the
// device's root). A stack that is not installed (or, for
// systemd-networkd, not enabled) is not read: its files are leftovers.
func Read(fsys fs.FS) Setup {
	var s Setup
	for _, st := range stacks() {
		if !st.active(fsys) {
			for _, pat := range stackFiles[st.name] {
				if ms, _ := fs.Glob(fsys, rel(pat)); len(ms) > 0 {
					s.Notes = append(s.Notes, fmt.Sprintf("%s is not in use here: /%s not read", st.name, strings.Join(ms, ", /")))
				}
			}
			continue
		}
		n := len(s.Profiles)
		st.read(fsys, &s)
		s.Notes = append(s.Notes, fmt.Sprintf("%s: %d setups read", st.name, len(s.Profiles)-n))
	}
	s.attachWifiAddressing()
	return s
}

// nmDirs are where NetworkManager keeps connections; a connection in
// /run (in memory, or rendered there at boot) overrides one with the same
// UUID in /etc.
var nmDirs = []string{"/run/NetworkManager/system-connections", "/etc/NetworkManager/system-connections"}

func readNM(fsys fs.FS, s *Setup) {
	seen := map[string]bool{}
	for _, dir := range nmDirs {
		ms, _ := fs.Glob(fsys, rel(dir)+"/*")
		slices.Sort(ms)
		for _, m := range ms {
			name := path.Base(m)
			// netplan renders its YAML here: that is read as netplan.
			if strings.HasPrefix(name, "netplan-") || strings.HasSuffix(name, ".nmmeta") || nmIgnored(name) {
				continue
			}
			if st, err := fs.Stat(fsys, m); err != nil || !st.Mode().IsRegular() {
				continue
			}
			data, err := fs.ReadFile(fsys, m)
			if err != nil {
				s.Refused = append(s.Refused, Refusal{Source: "/" + m, Why: fmt.Sprintf("cannot be read: %v", err)})
				continue
			}
			p, ok, ref := ParseNMKeyfile(string(data), "/"+m)
			if u := p.ConnUUID; u != "" {
				if seen[u] {
					continue
				}
				seen[u] = true
			}
			if ref != nil {
				s.Refused = append(s.Refused, *ref)
				continue
			}
			if ok {
				s.Profiles = append(s.Profiles, p)
			}
		}
	}
}

// nmIgnored are the file names NetworkManager's keyfile plugin skips.
func nmIgnored(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	for _, suf := range []string{".swp", ".swpx", ".bak", ".orig", ".rej", ".tmp"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return strings.Contains(name, ".dpkg-") || strings.Contains(name, ".rpmnew") || strings.Contains(name, ".rpmsave")
}

func readNetplan(fsys fs.FS, s *Setup) {
	ps, refused, notes := ReadNetplan(fsys)
	s.Profiles = append(s.Profiles, ps...)
	s.Refused = append(s.Refused, refused...)
	s.Notes = append(s.Notes, notes...)
}

func readIfupdown(fsys fs.FS, s *Setup) {
	ps, refused := ReadIfupdown(fsys)
	s.Profiles = append(s.Profiles, ps...)
	s.Refused = append(s.Refused, refused...)
}

func readNetworkd(fsys fs.FS, s *Setup) {
	ps, refused := ReadNetworkd(fsys)
	for _, p := range ps {
		if p.Kind == Wifi {
			// networkd addresses the link; the networks come from the
			// wpa_supplicant that runs on it.
			s.wifiAddressing = append(s.wifiAddressing, p)
			continue
		}
		s.Profiles = append(s.Profiles, p)
	}
	s.Refused = append(s.Refused, refused...)
}

func readDhcpcd(fsys fs.FS, s *Setup) {
	data, err := fs.ReadFile(fsys, "etc/dhcpcd.conf")
	if err != nil {
		return
	}
	d := ParseDhcpcd(string(data), "/etc/dhcpcd.conf")
	s.Refused = append(s.Refused, d.Refused...)
	for _, name := range sortedKeys(d.Interface) {
		p := d.Interface[name]
		if slices.Contains(d.Deny, name) || !p.Static() {
			continue
		}
		if strings.HasPrefix(name, "wl") {
			p.Kind = Wifi
			s.wifiAddressing = append(s.wifiAddressing, p)
			continue
		}
		s.Profiles = append(s.Profiles, p)
	}
	for _, ssid := range sortedKeys(d.SSID) {
		p := d.SSID[ssid]
		p.Kind, p.SSID, p.Interface = Wifi, ssid, ""
		s.wifiAddressing = append(s.wifiAddressing, p)
	}
}

func readWPA(fsys fs.FS, s *Setup) {
	ms, _ := fs.Glob(fsys, "etc/wpa_supplicant/wpa_supplicant*.conf")
	slices.Sort(ms)
	for _, m := range ms {
		data, err := fs.ReadFile(fsys, m)
		if err != nil {
			continue
		}
		iface := strings.TrimSuffix(strings.TrimPrefix(path.Base(m), "wpa_supplicant-"), ".conf")
		if path.Base(m) == "wpa_supplicant.conf" {
			iface = ""
		}
		for _, p := range ParseWPASupplicant(string(data), "/"+m) {
			p.Interface = iface
			p.fromWPA = true
			s.Profiles = append(s.Profiles, p)
		}
	}
}

func readConnman(fsys fs.FS, s *Setup) {
	ms, _ := fs.Glob(fsys, "var/lib/connman/*/settings")
	slices.Sort(ms)
	for _, m := range ms {
		if data, err := fs.ReadFile(fsys, m); err == nil {
			s.Profiles = append(s.Profiles, ParseConnman(string(data), "/"+m)...)
		}
	}
}

// attachWifiAddressing gives the Wi-Fi networks of wpa_supplicant the
// addressing dhcpcd or systemd-networkd set up for their SSID (dhcpcd's
// ssid blocks) or their interface (wpa_supplicant.conf serves wlan0).
func (s *Setup) attachWifiAddressing() {
	for _, p := range s.Profiles {
		if !p.fromWPA {
			continue
		}
		var best *Profile
		for _, a := range s.wifiAddressing {
			if a.SSID != "" && a.SSID == p.SSID {
				best = a
				break
			}
		}
		for _, a := range s.wifiAddressing {
			if best == nil && a.SSID == "" && a.namesLink(orString(p.Interface, "wlan0")) {
				best = a
			}
		}
		if best != nil {
			p.IPv4, p.IPv6 = copyIP(best.IPv4), copyIP(best.IPv6)
			p.MTU, p.ClonedMAC = best.MTU, best.ClonedMAC
			p.Source += " (addressing: " + best.Source + ")"
		}
	}
	s.wifiAddressing = nil
}
