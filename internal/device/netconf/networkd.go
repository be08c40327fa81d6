package netconf

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// networkdDirs are where systemd-networkd reads .network and .netdev
// files, earlier ones winning for a file of the same name. The vendor
// directory (/usr/lib/systemd/network) holds defaults for containers and
// VMs, not a device's setup, and is not read.
var networkdDirs = []string{"/etc/systemd/network", "/run/systemd/network"}

// unit is a systemd-style ini file: sections in order, each a list of
// key/value pairs (keys repeat).
type unit struct {
	name     string // file name
	source   string // path
	sections []section
}

type section struct {
	name string
	kv   [][2]string
}

// all returns every value of a key in every section of that name; an
// empty assignment resets the list, as systemd does.
func (u *unit) all(sec, key string) []string {
	var out []string
	for _, s := range u.sections {
		if s.name != sec {
			continue
		}
		for _, kv := range s.kv {
			if kv[0] != key {
				continue
			}
			if kv[1] == "" {
				out = nil
				continue
			}
			out = append(out, kv[1])
		}
	}
	return out
}

// last returns the last value of a key.
func (u *unit) last(sec, key string) string {
	v := u.all(sec, key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func parseUnit(data, name, source string) *unit {
	u := &unit{name: name, source: source}
	lines := strings.Split(data, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			u.sections = append(u.sections, section{name: line[1 : len(line)-1]})
		case len(u.sections) > 0:
			k, v, _ := strings.Cut(line, "=")
			s := &u.sections[len(u.sections)-1]
			s.kv = append(s.kv, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return u
}

// readUnits reads the files of one suffix with their drop-ins, the first
// directory winning for a name; a file linked to /dev/null is masked.
func readUnits(fsys fs.FS, suffix string, skip func(name string) bool) []*unit {
	seen := map[string]bool{}
	var out []*unit
	for _, dir := range networkdDirs {
		ms, _ := fs.Glob(fsys, rel(dir)+"/*"+suffix)
		slices.Sort(ms)
		for _, m := range ms {
			name := path.Base(m)
			if seen[name] || skip(name) {
				continue
			}
			seen[name] = true
			if masked(fsys, m) {
				continue
			}
			data, err := fs.ReadFile(fsys, m)
			if err != nil {
				continue
			}
			u := parseUnit(string(data), name, "/"+m)
			for _, d := range networkdDirs {
				drops, _ := fs.Glob(fsys, rel(d)+"/"+name+".d/*.conf")
				slices.Sort(drops)
				for _, dm := range drops {
					if dd, err := fs.ReadFile(fsys, dm); err == nil {
						u.sections = append(u.sections, parseUnit(string(dd), name, "/"+dm).sections...)
					}
				}
			}
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *unit) int { return strings.Compare(a.name, b.name) })
	return out
}

// masked says whether a file is a link to /dev/null (or empty).
func masked(fsys fs.FS, name string) bool {
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		if t, err := rl.ReadLink(name); err == nil && t == "/dev/null" {
			return true
		}
	}
	st, err := fs.Stat(fsys, name)
	return err == nil && st.Size() == 0
}

// ReadNetworkd reads systemd-networkd's setup: one profile per .network
// file, in the order networkd tries them (the first that matches a link
// wins, so earlier files get a higher autoconnect priority), VLANs and
// bonds from their .netdev files. Files netplan generated are skipped:
// netplan's own YAML is read instead.
func ReadNetworkd(fsys fs.FS) ([]*Profile, []Refusal) {
	fromNetplan := func(n string) bool { return strings.HasPrefix(n, "10-netplan-") }
	netdevs := map[string]*unit{}
	for _, u := range readUnits(fsys, ".netdev", fromNetplan) {
		if n := u.last("NetDev", "Name"); n != "" {
			netdevs[n] = u
		}
	}
	nd := &networkd{netdevs: netdevs}
	units := readUnits(fsys, ".network", fromNetplan)
	var out []*Profile
	for _, u := range units {
		if p := nd.profile(u); p != nil {
			out = append(out, p)
		}
	}
	// The parent of each VLAN is the link whose file lists it.
	for _, p := range out {
		if p.Kind != VLAN {
			continue
		}
		for _, q := range out {
			if slices.Contains(nd.vlansOf[q], p.Interface) {
				p.Parent, p.ParentMAC = q.Interface, q.MAC
			}
		}
		if p.Parent == "" && p.ParentMAC == "" {
			nd.refuse(p.Source, p.Interface, "VLAN %s: no .network file with a single link names it in VLAN=", p.Interface)
		}
	}
	// networkd takes the first file that matches a link; NetworkManager
	// the connection with the highest priority.
	var ranked []*Profile
	for _, p := range out {
		if p.Kind != Wifi && p.Controller == "" && !p.PlainDHCP() {
			ranked = append(ranked, p)
		}
	}
	if len(ranked) > 1 {
		for i, p := range ranked {
			p.setExtra("connection.autoconnect-priority", strconv.Itoa(len(ranked)-i))
		}
	}
	return out, nd.refused
}

type networkd struct {
	netdevs map[string]*unit
	vlansOf map[*Profile][]string
	refused []Refusal
}

func (nd *networkd) refuse(source, key, format string, a ...any) {
	nd.refused = append(nd.refused, Refusal{Source: source, Why: fmt.Sprintf(format, a...), Key: key})
}

// networkdKeys are the keys carried, or that change nothing NetworkManager
// does differently, by section.
var networkdKeys = map[string][]string{
	"Match": {"Name", "MACAddress", "Type", "PermanentMACAddress"},
	"Link":  {"MTUBytes", "MACAddress", "RequiredForOnline", "ActivationPolicy", "RequiredFamilyForOnline", "Unmanaged", "ARP", "Multicast", "AllMulticast"},
	"Network": {"Description", "DHCP", "Address", "Gateway", "DNS", "Domains", "IPv6AcceptRA", "LinkLocalAddressing",
		"VLAN", "Bond", "IPv6PrivacyExtensions", "ConfigureWithoutCarrier", "LLMNR", "MulticastDNS", "DNSSEC",
		"DNSOverTLS", "NTP", "KeepConfiguration", "IgnoreCarrierLoss", "LLDP", "EmitLLDP", "IPv6LinkLocalAddressGenerationMode"},
	"Address":              {"Address", "Label"},
	"Route":                {"Destination", "Gateway", "Metric", "GatewayOnLink"},
	"DHCP":                 {"UseDNS", "RouteMetric", "ClientIdentifier", "SendHostname", "Hostname", "UseHostname", "UseNTP", "UseDomains", "UseMTU", "UseRoutes", "CriticalConnection", "DUIDType", "IAID", "VendorClassIdentifier"},
	"DHCPv4":               {"UseDNS", "RouteMetric", "ClientIdentifier", "SendHostname", "Hostname", "UseHostname", "UseNTP", "UseDomains", "UseMTU", "UseRoutes", "DUIDType", "IAID", "VendorClassIdentifier", "UseGateway"},
	"DHCPv6":               {"UseDNS", "UseNTP", "UseDomains", "UseHostname", "DUIDType", "IAID", "WithoutRA"},
	"IPv6AcceptRA":         {"UseDNS", "UseDomains", "RouteMetric", "UseAutonomousPrefix", "UseOnLinkPrefix"},
	"IPv6PrefixDelegation": nil,
}

// profile turns one .network file into a profile.
func (nd *networkd) profile(u *unit) *Profile {
	id := strings.TrimSuffix(u.name, ".network")
	p := &Profile{ID: id, Kind: Ethernet, Source: u.source}
	bad := func(format string, a ...any) *Profile {
		nd.refuse(u.source, firstName(u), format, a...)
		return nil
	}
	for _, s := range u.sections {
		keys, ok := networkdKeys[s.name]
		if !ok || keys == nil {
			return bad("section [%s] is not carried", s.name)
		}
		for _, kv := range s.kv {
			if !slices.Contains(keys, kv[0]) {
				return bad("[%s] %s= is not carried", s.name, kv[0])
			}
		}
	}
	if b, _ := parseSystemdBool(u.last("Link", "Unmanaged")); b {
		return nil
	}
	// [Match]
	for _, n := range u.all("Match", "Name") {
		for _, f := range strings.Fields(n) {
			if strings.HasPrefix(f, "!") {
				return bad("Name=%s: a negative match is not carried", f)
			}
			p.Patterns = append(p.Patterns, f)
		}
	}
	if len(p.Patterns) == 1 && !strings.ContainsAny(p.Patterns[0], "*?[") {
		p.Interface, p.Patterns = p.Patterns[0], nil
	}
	macs := append(u.all("Match", "MACAddress"), u.all("Match", "PermanentMACAddress")...)
	var macList []string
	for _, m := range macs {
		macList = append(macList, strings.Fields(m)...)
	}
	switch {
	case len(macList) == 1 && isMAC(macList[0]):
		p.MAC = strings.ToLower(macList[0])
	case len(macList) > 0:
		return bad("MACAddress=%s: only one address is carried", strings.Join(macList, " "))
	}
	if p.Interface == "" && len(p.Patterns) == 0 && p.MAC == "" {
		switch t := u.last("Match", "Type"); t {
		case "ether", "":
			// [Match] without a name matches every link: NetworkManager
			// takes "*".
			p.Patterns = []string{"*"}
		case "wlan":
			p.Kind = Wifi
		default:
			return bad("Type=%s is not carried", t)
		}
	}
	if t := u.last("Match", "Type"); t == "wlan" || p.Interface != "" && strings.HasPrefix(p.Interface, "wl") {
		p.Kind = Wifi
	} else if t != "" && t != "ether" {
		return bad("Type=%s is not carried", t)
	}
	if dev := nd.netdevs[p.Interface]; dev != nil {
		switch kind := dev.last("NetDev", "Kind"); kind {
		case "vlan":
			p.Kind = VLAN
			n, err := strconv.Atoi(dev.last("VLAN", "Id"))
			if err != nil {
				return bad("VLAN %s: Id=%q in %s", p.Interface, dev.last("VLAN", "Id"), dev.source)
			}
			p.VLANID = n
		case "bond":
			p.Kind = Bond
			if why := nd.bondOptions(dev, p); why != "" {
				return bad("bond %s: %s", p.Interface, why)
			}
		default:
			return bad("%s is a %s device (%s), which is not carried", p.Interface, kind, dev.source)
		}
		if why := netdevKeys(dev); why != "" {
			return bad("%s: %s", dev.source, why)
		}
	}
	// [Link]
	if v := u.last("Link", "MTUBytes"); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			return bad("MTUBytes=%s", v)
		}
		p.MTU = uint32(n)
	}
	if v := u.last("Link", "MACAddress"); v != "" {
		if !isMAC(v) {
			return bad("[Link] MACAddress=%s", v)
		}
		p.ClonedMAC = strings.ToLower(v)
	}
	if v := u.last("Link", "ActivationPolicy"); v == "manual" || v == "down" || v == "always-down" {
		p.NoAutoconnect = true
	}
	// [Network]
	if b := u.last("Network", "Bond"); b != "" {
		p.Controller = b
		p.ID = b + " port " + orString(p.Interface, id)
		return p
	}
	dhcp := strings.ToLower(u.last("Network", "DHCP"))
	p.IPv4.Method, p.IPv6.Method = Disabled, Auto
	switch dhcp {
	case "yes", "true", "both", "1", "on":
		p.IPv4.Method = Auto
	case "ipv4", "v4":
		p.IPv4.Method = Auto
	case "ipv6", "v6", "", "no", "false", "0", "off":
	default:
		return bad("DHCP=%s", dhcp)
	}
	if ra := u.last("Network", "IPv6AcceptRA"); ra != "" {
		if b, ok := parseSystemdBool(ra); ok && !b {
			if dhcp == "yes" || dhcp == "ipv6" || dhcp == "true" || dhcp == "both" {
				p.IPv6.Method = DHCPOnly
			} else {
				p.IPv6.Method = Disabled
			}
		}
	}
	ll := strings.ToLower(u.last("Network", "LinkLocalAddressing"))
	if (ll == "ipv4" || ll == "yes" || ll == "fallback" || ll == "true") && p.IPv4.Method == Disabled {
		p.IPv4.Method = LinkLocal
	}
	addrs := append(u.all("Network", "Address"), u.all("Address", "Address")...)
	for _, a := range addrs {
		pf, err := parsePrefix(a, -1)
		if err != nil {
			return bad("Address=%s: %v", a, err)
		}
		if pf.Addr().Is4() && p.IPv4.Method == Disabled {
			p.IPv4.Method = Manual
		}
		p.addAddress(pf)
	}
	for _, g := range u.all("Network", "Gateway") {
		a, err := parseAddr(g)
		if err != nil {
			return bad("Gateway=%s", g)
		}
		if fam := p.family(a); !fam.Gateway.IsValid() {
			fam.Gateway = a
		} else {
			p.addRoute(Route{To: defaultOf(a), Via: a})
		}
	}
	for _, d := range u.all("Network", "DNS") {
		for _, f := range strings.Fields(d) {
			a, err := parseAddr(f)
			if err != nil {
				return bad("DNS=%s: only plain addresses are carried", f)
			}
			p.addDNS(a)
		}
	}
	for _, d := range u.all("Network", "Domains") {
		for _, f := range strings.Fields(d) {
			p.IPv4.Search = appendNew(p.IPv4.Search, strings.TrimPrefix(f, "~"))
		}
	}
	for i, s := range u.sections {
		if s.name != "Route" {
			continue
		}
		rt, why := networkdRoute(&unit{sections: u.sections[i : i+1]})
		if why != "" {
			return bad("[Route] %s", why)
		}
		p.addRoute(rt)
	}
	for _, sec := range []string{"DHCP", "DHCPv4"} {
		if b, ok := parseSystemdBool(u.last(sec, "UseDNS")); ok && !b {
			p.IPv4.IgnoreAutoDNS = true
		}
		if v := u.last(sec, "RouteMetric"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return bad("RouteMetric=%s", v)
			}
			p.IPv4.Metric = n
		}
	}
	if b, ok := parseSystemdBool(u.last("DHCPv6", "UseDNS")); ok && !b {
		p.IPv6.IgnoreAutoDNS = true
	}
	if vl := u.all("Network", "VLAN"); len(vl) > 0 {
		if nd.vlansOf == nil {
			nd.vlansOf = map[*Profile][]string{}
		}
		for _, v := range vl {
			nd.vlansOf[p] = append(nd.vlansOf[p], strings.Fields(v)...)
		}
		if p.Interface == "" && p.MAC == "" {
			return bad("VLAN= on a file that matches links by pattern")
		}
	}
	return p
}

// networkdRoute reads one [Route] section.
func networkdRoute(u *unit) (Route, string) {
	var rt Route
	if g := u.last("Route", "Gateway"); g != "" && g != "_dhcp4" && g != "_ipv6ra" {
		a, err := parseAddr(g)
		if err != nil {
			return rt, "Gateway=" + g
		}
		rt.Via = a
	} else if g != "" {
		return rt, "Gateway=" + g + " is not carried"
	}
	family := rt.Via
	dst := u.last("Route", "Destination")
	if !family.IsValid() {
		family = mustFamily(dst)
	}
	if dst == "" {
		dst = "default"
	}
	to, err := parseDest(dst, family)
	if err != nil {
		return rt, "Destination=" + dst
	}
	rt.To = to
	if m := u.last("Route", "Metric"); m != "" {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return rt, "Metric=" + m
		}
		rt.Metric = n
	}
	return rt, ""
}

// bondOptions maps a .netdev's [Bond] section to the kernel's names.
func (nd *networkd) bondOptions(dev *unit, p *Profile) string {
	names := map[string]string{"Mode": "mode", "TransmitHashPolicy": "xmit_hash_policy", "LACPTransmitRate": "lacp_rate",
		"MIIMonitorSec": "miimon", "UpDelaySec": "updelay", "DownDelaySec": "downdelay", "ARPIntervalSec": "arp_interval",
		"ARPIPTargets": "arp_ip_target", "ARPValidate": "arp_validate", "ARPAllTargets": "arp_all_targets",
		"PrimaryReselectPolicy": "primary_reselect", "FailOverMACPolicy": "fail_over_mac", "AdSelect": "ad_select",
		"MinLinks": "min_links", "GratuitousARP": "num_grat_arp", "PacketsPerSlave": "packets_per_slave",
		"AllSlavesActive": "all_slaves_active", "ResendIGMP": "resend_igmp", "LearnPacketIntervalSec": "lp_interval"}
	p.BondOptions = map[string]string{}
	for _, s := range dev.sections {
		if s.name != "Bond" {
			continue
		}
		for _, kv := range s.kv {
			name, ok := names[kv[0]]
			if !ok {
				return kv[0] + "= is not carried"
			}
			v := kv[1]
			switch {
			case strings.HasSuffix(kv[0], "Sec"):
				d, err := parseSystemdTime(v)
				if err != nil {
					return kv[0] + "=" + v
				}
				v = strconv.FormatInt(d.Milliseconds(), 10)
				if kv[0] == "LearnPacketIntervalSec" {
					v = strconv.FormatInt(int64(d/time.Second), 10)
				}
			case kv[0] == "ARPIPTargets":
				v = strings.Join(strings.Fields(v), ",")
			case kv[0] == "AllSlavesActive":
				b, _ := parseSystemdBool(v)
				v = map[bool]string{true: "1", false: "0"}[b]
			}
			p.BondOptions[name] = v
		}
	}
	return ""
}

// netdevKeys refuses .netdev settings other than the name, kind and the
// kind's own section.
func netdevKeys(dev *unit) string {
	for _, s := range dev.sections {
		switch s.name {
		case "NetDev":
			for _, kv := range s.kv {
				if kv[0] != "Name" && kv[0] != "Kind" && kv[0] != "Description" {
					return "[NetDev] " + kv[0] + "= is not carried"
				}
			}
		case "VLAN":
			for _, kv := range s.kv {
				if kv[0] != "Id" {
					return "[VLAN] " + kv[0] + "= is not carried"
				}
			}
		case "Bond":
		default:
			return "[" + s.name + "] is not carried"
		}
	}
	return ""
}

func firstName(u *unit) string {
	if f := strings.Fields(u.last("Match", "Name")); len(f) == 1 {
		return f[0]
	}
	return ""
}

func orString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func parseSystemdBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "yes", "true", "on", "y", "t":
		return true, true
	case "0", "no", "false", "off", "n", "f":
		return false, true
	}
	return false, false
}

// parseSystemdTime reads a systemd time span: "100ms", "1s", "2min", "5".
func parseSystemdTime(v string) (time.Duration, error) {
	v = strings.ReplaceAll(strings.TrimSpace(v), " ", "")
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	v = strings.Replace(v, "msec", "ms", 1)
	v = strings.Replace(v, "min", "m", 1)
	v = strings.Replace(v, "sec", "s", 1)
	return time.ParseDuration(v)
}

// parseBytes reads a size with an optional K, M or G (powers of 1024).
func parseBytes(v string) (uint64, error) {
	mult := uint64(1)
	switch {
	case strings.HasSuffix(v, "K"):
		mult, v = 1024, strings.TrimSuffix(v, "K")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return n * mult, err
}
