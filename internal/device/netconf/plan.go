package netconf

import (
	"fmt"
	"slices"
	"strings"
)

// Options are the operator's choices about what to carry.
type Options struct {
	// AllWifis carries every Wi-Fi network the device knows
	// (MIGRATE_ALL_WIFIS); by default only those of a wireless link the
	// device is reached through.
	AllWifis bool
	// WifiFilter, when not nil, carries only these SSIDs (MIGRATE_WIFI_CFG).
	WifiFilter map[string]bool
	// Skip leaves setups behind: interface names and NetworkManager
	// connection UUIDs (NETWORK_SKIP). Each is logged.
	Skip []string
	// Wifi are networks given apart from the system (config.json's
	// wifiSsid): always carried, ahead of the system's.
	Wifi []*Profile
	// Given are connections the operator supplies as files
	// (COPY_NMGR_FILES): they are installed as they are, replace what the
	// system has for the same interface and cover it.
	Given []*Profile
}

// Plan is what goes to balenaOS and why.
type Plan struct {
	// Write are the profiles to write, wired ones first, then Wi-Fi.
	Write []*Profile
	// Refused are the setups that cannot be carried.
	Refused []Refusal
	// Unreachable are the links the device is reached through that no
	// carried setup covers (the reachability contract).
	Unreachable []Refusal
	Infos       []string
	Warnings    []string
	// Covered says how each link of the path is covered, for the log.
	Covered []string
}

// MakePlan decides what to carry from the system's setup s, the running
// network live and the operator's options.
func MakePlan(s Setup, live Live, o Options) Plan {
	var pl Plan
	pl.Infos = append(pl.Infos, s.Notes...)
	skipped := func(p *Profile) bool {
		return p.Interface != "" && slices.Contains(o.Skip, p.Interface) || p.ConnUUID != "" && slices.Contains(o.Skip, p.ConnUUID)
	}
	givenFor := func(name string) *Profile {
		for _, g := range o.Given {
			if g.namesLink(name) {
				return g
			}
		}
		return nil
	}
	for _, r := range s.Refused {
		switch {
		case r.Key != "" && slices.Contains(o.Skip, r.Key):
			pl.Warnings = append(pl.Warnings, fmt.Sprintf("left behind (NETWORK_SKIP %s): %s", r.Key, r))
		case r.Key != "" && givenFor(r.Key) != nil:
			pl.Warnings = append(pl.Warnings, fmt.Sprintf("replaced by %s from COPY_NMGR_FILES: %s", givenFor(r.Key).Source, r))
		default:
			pl.Refused = append(pl.Refused, r)
		}
	}
	path := live.Path()
	wifiLink := false
	for _, n := range path {
		if k := live.Link(n); k != nil && k.Wireless {
			wifiLink = true
		}
	}
	var wired, wifis []*Profile
	for _, p := range s.Profiles {
		switch {
		case skipped(p):
			pl.Warnings = append(pl.Warnings, fmt.Sprintf("left behind (NETWORK_SKIP): %s from %s", p.Label(), p.Source))
		case p.Kind == Wifi:
			wifis = append(wifis, p)
		case p.Interface != "" && givenFor(p.Interface) != nil:
			pl.Infos = append(pl.Infos, fmt.Sprintf("%s from %s: COPY_NMGR_FILES has %s for it instead", p.Label(), p.Source, givenFor(p.Interface).Source))
		default:
			bind(p, live)
			wired = append(wired, p)
		}
	}
	for _, p := range wired {
		if p.PlainDHCP() {
			pl.Infos = append(pl.Infos, fmt.Sprintf("%s from %s is DHCP: balenaOS does that on every wired port by itself", p.Label(), p.Source))
			continue
		}
		pl.Write = append(pl.Write, p)
	}
	pl.conflicts()
	pl.selectWifis(append(slices.Clone(o.Wifi), wifis...), o, wifiLink)
	pl.reach(live, wired, o.Given)
	return pl
}

// bind finds a physical device by its own permanent address where the
// source names it: balenaOS may name it differently.
func bind(p *Profile, live Live) {
	if p.Keyfile != nil {
		return
	}
	if k := live.Link(p.Interface); k != nil && p.MAC == "" && p.Kind == Ethernet && k.Physical && k.PermanentMAC {
		p.MAC = k.MAC
	}
	if k := live.Link(p.Parent); k != nil && p.Kind == VLAN && p.ParentMAC == "" && k.Physical && k.PermanentMAC {
		p.ParentMAC = k.MAC
	}
}

// conflicts refuses two setups of one interface from different files:
// which one the device uses is not certain.
func (pl *Plan) conflicts() {
	for i, p := range pl.Write {
		for _, q := range pl.Write[:i] {
			same := p.Interface != "" && p.Interface == q.Interface || p.MAC != "" && p.MAC == q.MAC && p.Kind == q.Kind
			if same && fileOf(p.Source) != fileOf(q.Source) {
				pl.Refused = append(pl.Refused, Refusal{Source: p.Source, Key: p.Interface,
					Why: fmt.Sprintf("%s is also set up by %s: which of the two the device uses is not certain; remove one", orString(p.Interface, p.MAC), q.Source)})
			}
		}
	}
}

// fileOf is the file part of a profile's source.
func fileOf(source string) string {
	f, _, _ := strings.Cut(source, ":")
	f, _, _ = strings.Cut(f, " ")
	return f
}

// selectWifis picks the Wi-Fi networks to carry: the given ones, then the
// system's when asked for (MIGRATE_ALL_WIFIS, MIGRATE_WIFI_CFG) or when the
// device is reached over Wi-Fi. A network picked that cannot be carried is
// refused.
func (pl *Plan) selectWifis(ws []*Profile, o Options, wifiLink bool) {
	seen := map[string]bool{}
	for i, p := range ws {
		given := i < len(o.Wifi)
		switch {
		case seen[p.SSID]:
			continue
		case !given && o.WifiFilter != nil && !o.WifiFilter[p.SSID]:
			pl.Infos = append(pl.Infos, fmt.Sprintf("Wi-Fi %q from %s is not in MIGRATE_WIFI_CFG: not carried", p.SSID, p.Source))
			continue
		case !given && o.WifiFilter == nil && !o.AllWifis && !wifiLink:
			pl.Infos = append(pl.Infos, fmt.Sprintf("Wi-Fi %q from %s is not carried: the device is not reached over Wi-Fi (MIGRATE_ALL_WIFIS=TRUE carries it)", p.SSID, p.Source))
			continue
		}
		seen[p.SSID] = true
		if _, err := Keyfile(p); err != nil {
			pl.Refused = append(pl.Refused, Refusal{Source: p.Source,
				Why: fmt.Sprintf("%v: give a NetworkManager file for it in COPY_NMGR_FILES, or leave it out with MIGRATE_WIFI_CFG", err)})
			continue
		}
		pl.Write = append(pl.Write, p)
	}
}

// reach checks the reachability contract: every link the device is
// reached through must come up on balenaOS — a DHCP ethernet port (which
// balenaOS sets up by itself) or a link a carried setup covers.
func (pl *Plan) reach(live Live, wired []*Profile, given []*Profile) {
	for _, n := range live.Path() {
		k := live.Link(n)
		if k == nil {
			pl.Unreachable = append(pl.Unreachable, Refusal{Source: n, Key: n, Why: "the link is gone"})
			continue
		}
		why := []string{}
		if slices.Contains(live.Default, n) {
			why = append(why, "the default route")
		}
		if live.Session == n {
			why = append(why, "the SSH session")
		}
		role := strings.Join(why, " and ")
		if how := pl.covers(k, wired, given); how != "" {
			pl.Covered = append(pl.Covered, fmt.Sprintf("%s (%s) comes up on balenaOS: %s", n, role, how))
			continue
		}
		pl.Unreachable = append(pl.Unreachable, Refusal{Source: n, Key: n, Why: fmt.Sprintf("%s carries %s but %s", n, role, uncovered(k))})
	}
}

// covers says how a link comes up on balenaOS, or "" when it does not.
func (pl *Plan) covers(k *Link, wired, given []*Profile) string {
	for _, p := range append(slices.Clone(given), pl.Write...) {
		if p.Carries(k.Name, k.MAC, k.Wireless) {
			return fmt.Sprintf("%s from %s", p.Label(), p.Source)
		}
	}
	dhcpEthernet := k.Ethernet && k.Physical && !k.Wireless
	for _, p := range wired {
		if p.PlainDHCP() && p.Carries(k.Name, k.MAC, k.Wireless) {
			if dhcpEthernet {
				return "DHCP on an ethernet port, as " + p.Source + " says"
			}
			return ""
		}
	}
	if dhcpEthernet && leased(k) {
		return "DHCP on an ethernet port (no setup names it; its address is leased)"
	}
	return ""
}

// leased says whether the link's IPv4 addresses all come with a lease.
func leased(k *Link) bool {
	n := 0
	for _, a := range k.Addrs {
		if a.Prefix.Addr().Is4() {
			if !a.Dynamic {
				return false
			}
			n++
		}
	}
	return n > 0
}

// uncovered says why a link would not come up.
func uncovered(k *Link) string {
	switch {
	case k.Wireless:
		return "no Wi-Fi network is carried for it: list its network in MIGRATE_WIFI_CFG or give a NetworkManager file in COPY_NMGR_FILES"
	case !k.Physical:
		return fmt.Sprintf("no carried setup makes it (a virtual link): give a NetworkManager file for %s in COPY_NMGR_FILES", k.Name)
	}
	var static []string
	for _, a := range k.Addrs {
		if !a.Dynamic && !a.Prefix.Addr().IsLinkLocalUnicast() {
			static = append(static, a.Prefix.String())
		}
	}
	if len(static) > 0 {
		return fmt.Sprintf("its address %s is set by nothing balena-migrate reads: give a NetworkManager file for %s in COPY_NMGR_FILES", strings.Join(static, ", "), k.Name)
	}
	return fmt.Sprintf("no carried setup covers it and it has no leased address: give a NetworkManager file for %s in COPY_NMGR_FILES", k.Name)
}
