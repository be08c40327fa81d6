package netconf

import (
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ifupdown reads /etc/network/interfaces and the files it sources.
type ifupdown struct {
	fsys    fs.FS
	auto    map[string]bool // interfaces brought up at boot (auto, allow-*)
	stanzas []*stanza
	refused []Refusal
	seen    map[string]bool // files read, against source loops
}

// stanza is one `iface NAME FAMILY METHOD` block.
type stanza struct {
	name, family, method string
	source               string // file:line
	opts                 [][2]string
}

func (s *stanza) get(key string) string {
	for _, o := range s.opts {
		if o[0] == key {
			return o[1]
		}
	}
	return ""
}

// ReadIfupdown reads ifupdown's setup under fsys: one profile per
// interface (its inet and inet6 stanzas together), one per Wi-Fi network
// of an interface with wpa-ssid or wpa-conf.
func ReadIfupdown(fsys fs.FS) ([]*Profile, []Refusal) {
	r := &ifupdown{fsys: fsys, auto: map[string]bool{}, seen: map[string]bool{}}
	r.file("/etc/network/interfaces")
	return r.profiles()
}

// runPartsName is the names source-directory includes (run-parts' rule).
var runPartsName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// file reads one interfaces file.
func (r *ifupdown) file(name string) {
	if r.seen[name] {
		return
	}
	r.seen[name] = true
	data, err := fs.ReadFile(r.fsys, rel(name))
	if err != nil {
		if name != "/etc/network/interfaces" {
			r.refuse(name, "", fmt.Sprintf("cannot be read: %v", err))
		}
		return
	}
	var cur *stanza
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line, at := lines[i], i+1
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + lines[i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		where := fmt.Sprintf("%s:%d", name, at)
		switch {
		case word == "iface":
			f := strings.Fields(rest)
			if len(f) < 3 {
				r.refuse(where, "", "an iface line without a family and method")
				cur = nil
				continue
			}
			cur = &stanza{name: f[0], family: f[1], method: f[2], source: where}
			if len(f) > 3 {
				r.refuse(where, f[0], "iface "+f[0]+" uses "+strings.Join(f[3:], " ")+" (templates are not carried)")
			}
			r.stanzas = append(r.stanzas, cur)
		case word == "auto" || strings.HasPrefix(word, "allow-"):
			for _, n := range strings.Fields(rest) {
				r.auto[n] = true
			}
			cur = nil
		case word == "source":
			r.source(rest)
			cur = nil
		case word == "source-directory":
			dir := r.abs(rest)
			ents, _ := fs.ReadDir(r.fsys, rel(dir))
			for _, e := range ents {
				if runPartsName.MatchString(e.Name()) && !e.IsDir() {
					r.file(path.Join(dir, e.Name()))
				}
			}
			cur = nil
		case word == "mapping":
			r.refuse(where, "", "a mapping stanza (a script picks the setup at boot), which NetworkManager has no counterpart for")
			cur = &stanza{} // its script and map lines belong to no interface
		case word == "rename" || word == "no-auto-down" || word == "no-scripts":
			if word == "rename" {
				r.refuse(where, "", "a rename stanza")
			}
			cur = nil
		case cur != nil:
			cur.opts = append(cur.opts, [2]string{word, rest})
		default:
			r.refuse(where, "", fmt.Sprintf("%q outside any iface stanza", word))
		}
	}
}

// source includes the files a `source` line names (a glob).
func (r *ifupdown) source(pattern string) {
	pat := r.abs(pattern)
	ms, _ := fs.Glob(r.fsys, rel(pat))
	slices.Sort(ms)
	for _, m := range ms {
		if st, err := fs.Stat(r.fsys, m); err == nil && !st.IsDir() {
			r.file("/" + m)
		}
	}
}

// abs resolves a path an interfaces file names: relative ones are taken
// in /etc/network, as ifupdown does.
func (r *ifupdown) abs(p string) string {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "/") {
		p = path.Join("/etc/network", p)
	}
	return p
}

func (r *ifupdown) refuse(source, key, why string) {
	r.refused = append(r.refused, Refusal{Source: source, Why: why, Key: key})
}

// profiles turns the stanzas into profiles.
func (r *ifupdown) profiles() ([]*Profile, []Refusal) {
	byName := map[string]*Profile{}
	var order []string
	var wifis []*Profile
	ports := map[string]string{} // port → bond
	for _, s := range r.stanzas {
		if s.family == "inet" && s.method == "loopback" || s.name == "lo" {
			continue
		}
		p := byName[s.name]
		if p == nil {
			p = &Profile{ID: s.name, Kind: Ethernet, Source: s.source, Interface: s.name, NoAutoconnect: !r.auto[s.name]}
			// Only the families with a stanza are set up.
			p.IPv4.Method, p.IPv6.Method = Disabled, Auto
			byName[s.name] = p
			order = append(order, s.name)
		}
		if err := r.apply(p, s, ports, &wifis); err != "" {
			r.refuse(s.source, s.name, err)
			delete(byName, s.name)
		}
	}
	for _, port := range sortedKeys(ports) {
		if bond := ports[port]; byName[port] == nil && byName[bond] != nil {
			byName[port] = &Profile{ID: port, Kind: Ethernet, Source: byName[bond].Source, Interface: port}
			order = append(order, port)
		}
	}
	var out []*Profile
	for _, n := range order {
		p := byName[n]
		if p == nil {
			continue
		}
		if b := ports[n]; b != "" {
			p.Controller = b
			p.ID = b + " port " + n
			if bp := byName[b]; bp != nil {
				bp.Kind = Bond
			}
		}
		if p.Kind == Wifi {
			continue // the networks carry its addressing
		}
		if p.Kind == Ethernet && p.Controller == "" && r.onlyManual(n) {
			continue // `inet manual`: ifupdown leaves the addressing to something else
		}
		out = append(out, p)
	}
	return append(out, wifis...), r.refused
}

// onlyManual says whether every stanza of the interface is `manual`
// without options that set anything.
func (r *ifupdown) onlyManual(name string) bool {
	for _, s := range r.stanzas {
		if s.name == name && (s.method != "manual" || len(s.opts) > 0) {
			return false
		}
	}
	return true
}

// onlyManualFamily says whether the interface's stanzas of a family are
// all `manual` (or there are none), with no addresses.
func (r *ifupdown) onlyManualFamily(name, family string) bool {
	for _, s := range r.stanzas {
		if s.name == name && s.family == family && (s.method != "manual" || s.get("address") != "") {
			return false
		}
	}
	return true
}

// vlanName reads the VLAN id and parent from an interface name: eth0.100
// (parent eth0) or vlan100 (parent from vlan-raw-device).
var vlanDotted = regexp.MustCompile(`^(.+)\.([0-9]+)$`)
var vlanPlain = regexp.MustCompile(`^vlan0*([0-9]+)$`)

// apply adds one stanza to the interface's profile; a non-empty result
// says what cannot be carried.
func (r *ifupdown) apply(p *Profile, s *stanza, ports map[string]string, wifis *[]*Profile) string {
	var ip *IP
	switch s.family {
	case "inet":
		ip = &p.IPv4
		switch s.method {
		case "static":
			ip.Method = Manual
		case "dhcp":
			ip.Method = Auto
		case "manual":
			if ip.Method != Manual && ip.Method != Auto {
				ip.Method = Disabled
			}
		default:
			return fmt.Sprintf("iface %s inet %s: the %s method is not carried", s.name, s.method, s.method)
		}
	case "inet6":
		ip = &p.IPv6
		switch s.method {
		case "static":
			ip.Method = Manual
		case "auto", "dhcp":
			// NetworkManager's auto follows the router advertisements,
			// asking DHCPv6 when they say so.
			ip.Method = Auto
		case "manual":
		default:
			return fmt.Sprintf("iface %s inet6 %s: the %s method is not carried", s.name, s.method, s.method)
		}
	default:
		return fmt.Sprintf("iface %s %s: the %s family is not carried", s.name, s.family, s.family)
	}
	if m := vlanDotted.FindStringSubmatch(s.name); m != nil {
		p.Kind, p.Parent = VLAN, m[1]
		p.VLANID, _ = strconv.Atoi(m[2])
	} else if m := vlanPlain.FindStringSubmatch(s.name); m != nil && (s.get("vlan-raw-device") != "" || s.get("vlan_raw_device") != "") {
		p.Kind = VLAN
		p.VLANID, _ = strconv.Atoi(m[1])
	}
	var w struct {
		ssid, psk, keyMgmt, other string
		set                       bool
	}
	var prefixLen string
	for _, o := range s.opts {
		k, v := o[0], strings.TrimSpace(o[1])
		switch {
		case k == "address":
			a, err := parsePrefix(v, -2)
			if err != nil && !strings.Contains(v, "/") {
				var ad netip.Addr
				if ad, err = parseAddr(v); err == nil {
					a = netip.PrefixFrom(ad, -1) // length from netmask
				}
			}
			if err != nil {
				return fmt.Sprintf("iface %s: address %q: %v", s.name, v, err)
			}
			ip.Addresses = append(ip.Addresses, a)
		case k == "netmask":
			prefixLen = v
		case k == "gateway":
			a, err := parseAddr(v)
			if err != nil {
				return fmt.Sprintf("iface %s: gateway %q: %v", s.name, v, err)
			}
			ip.Gateway = a
		case k == "broadcast" || k == "network" || k == "description" || k == "leasehours" || k == "leasetime" ||
			k == "privext" || k == "dad-attempts" || k == "dad-interval" || k == "ll-attempts" || k == "ll-interval" ||
			k == "bond-give-a-chance" || k == "wpa-driver" || k == "wpa-id-str" || k == "wpa-country" || k == "wpa-ap-scan" ||
			k == "dns-options" || k == "dns-sortlist" || k == "request_prefix" || k == "dhcp" || k == "autoconf":
			// Nothing NetworkManager does differently, or chosen by it.
		case k == "metric":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Sprintf("iface %s: metric %q", s.name, v)
			}
			ip.Metric = n
		case k == "mtu":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Sprintf("iface %s: mtu %q", s.name, v)
			}
			p.MTU = uint32(n)
		case k == "hwaddress":
			f := strings.Fields(v)
			if len(f) == 2 && f[0] == "ether" {
				f = f[1:]
			}
			if len(f) != 1 || !isMAC(f[0]) {
				return fmt.Sprintf("iface %s: hwaddress %q", s.name, v)
			}
			p.ClonedMAC = strings.ToLower(f[0])
		case k == "accept_ra":
			if v == "0" && s.method != "static" {
				return fmt.Sprintf("iface %s: accept_ra 0 with %s (no router advertisements) is not carried", s.name, s.method)
			}
		case k == "hostname" && s.method == "dhcp":
			p.setExtra("ipv4.dhcp-hostname", v)
		case k == "dns-nameservers" || k == "dns-nameserver":
			for _, d := range strings.Fields(v) {
				a, err := parseAddr(d)
				if err != nil {
					return fmt.Sprintf("iface %s: dns-nameservers %q", s.name, d)
				}
				p.addDNS(a)
			}
		case k == "dns-search" || k == "dns-domain":
			p.IPv4.Search = appendNew(p.IPv4.Search, strings.Fields(v)...)
		case k == "vlan-raw-device" || k == "vlan_raw_device":
			p.Kind, p.Parent = VLAN, v
		case k == "bond-slaves" || k == "slaves":
			p.Kind = Bond
			if v != "none" {
				for _, port := range strings.Fields(v) {
					ports[port] = s.name
				}
			}
		case k == "bond-master":
			ports[s.name] = v
		case strings.HasPrefix(k, "bond-") || strings.HasPrefix(k, "bond_"):
			p.Kind = Bond
			name := strings.ReplaceAll(k[len("bond-"):], "-", "_")
			if name == "mode" {
				v = bondMode(v)
			}
			if p.BondOptions == nil {
				p.BondOptions = map[string]string{}
			}
			p.BondOptions[name] = v
		case strings.HasPrefix(k, "bridge") || k == "bridge_ports":
			return fmt.Sprintf("iface %s is a bridge (%s), which is not carried: give a NetworkManager file for it in COPY_NMGR_FILES", s.name, k)
		case k == "wpa-ssid" || k == "wpa-essid" || k == "wireless-essid":
			w.ssid, w.set = unquote(v), true
		case k == "wpa-psk" || k == "wpa-passphrase":
			w.psk, w.set = unquote(v), true
		case k == "wpa-psk-file" || k == "wpa-passphrase-file":
			data, err := fs.ReadFile(r.fsys, rel(v))
			if err != nil {
				return fmt.Sprintf("iface %s: %s %s cannot be read: %v", s.name, k, v, err)
			}
			w.psk, w.set = unquote(strings.TrimRight(string(data), "\n")), true
		case k == "wpa-key-mgmt":
			w.keyMgmt, w.set = strings.ToUpper(v), true
		case k == "wpa-scan-ssid" || k == "wpa-priority" || k == "wpa-proto" || k == "wpa-pairwise" || k == "wpa-group":
		case k == "wpa-conf":
			data, err := fs.ReadFile(r.fsys, rel(v))
			if err != nil {
				return fmt.Sprintf("iface %s: wpa-conf %s cannot be read: %v", s.name, v, err)
			}
			for _, n := range ParseWPASupplicant(string(data), v) {
				n.Interface = s.name
				*wifis = append(*wifis, n)
			}
			p.Kind = Wifi
		case k == "wpa-roam":
			return fmt.Sprintf("iface %s: wpa-roam (wpa_supplicant picks a logical interface per network) is not carried: write the networks into a wpa-conf file or give NetworkManager files in COPY_NMGR_FILES", s.name)
		case strings.HasPrefix(k, "wpa-") || strings.HasPrefix(k, "wireless-"):
			w.set = true
			if w.other == "" {
				w.other = "the option " + k
			}
		case k == "up" || k == "post-up" || k == "pre-up":
			if why := r.upCommand(p, s, v); why != "" {
				return why
			}
		case k == "down" || k == "pre-down" || k == "post-down":
			if !undoesUp(v) {
				return fmt.Sprintf("iface %s: %s %q runs a command, which is not carried", s.name, k, v)
			}
		default:
			return fmt.Sprintf("iface %s: the option %s is not carried", s.name, k)
		}
	}
	for i, a := range ip.Addresses {
		if a.Bits() >= 0 {
			continue
		}
		n := 24
		if s.family == "inet6" {
			n = 64
		}
		if prefixLen != "" {
			var err error
			if n, err = strconv.Atoi(prefixLen); err != nil {
				if n, err = maskBits(prefixLen); err != nil {
					return fmt.Sprintf("iface %s: netmask %q", s.name, prefixLen)
				}
			}
		} else if s.family == "inet" {
			return fmt.Sprintf("iface %s: address %s has neither a /length nor a netmask", s.name, a.Addr())
		}
		ip.Addresses[i] = netip.PrefixFrom(a.Addr(), n)
	}
	if ip.Method == Manual && len(ip.Addresses) == 0 {
		return fmt.Sprintf("iface %s %s static without an address", s.name, s.family)
	}
	if w.set {
		if w.ssid == "" {
			return fmt.Sprintf("iface %s: Wi-Fi options without wpa-ssid", s.name)
		}
		wifi := &Profile{ID: w.ssid, Kind: Wifi, Source: s.source, Interface: s.name, SSID: w.ssid, PSK: w.psk}
		km := w.keyMgmt
		if km == "" && w.psk == "" {
			km = "NONE" // wpa-ssid alone, or wireless-essid: an open network
		}
		wifi.Security, wifi.Why = wpaSecurity(km, w.psk != "", false, false)
		if w.other != "" {
			wifi.Security, wifi.Why = Unsupported, w.other
		}
		if wifi.Security == Open || wifi.Security == Unsupported {
			wifi.PSK = ""
		}
		*wifis = append(*wifis, wifi)
		p.Kind = Wifi
	}
	if p.Kind == Wifi {
		// The stanza's addressing goes with every network of the interface.
		// `inet manual` leaves it to another program (dhcpcd on Raspberry
		// Pi OS up to 11): DHCP, unless dhcpcd or networkd say otherwise.
		for _, w := range *wifis {
			if w.Interface == s.name {
				w.NoAutoconnect = w.NoAutoconnect || p.NoAutoconnect
				w.IPv4, w.IPv6 = copyIP(p.IPv4), copyIP(p.IPv6)
				w.MTU, w.ClonedMAC = p.MTU, p.ClonedMAC
				if r.onlyManualFamily(s.name, "inet") {
					w.IPv4.Method, w.fromWPA = Auto, true
				}
			}
		}
	}
	return ""
}

// upCommand reads the route and address commands an up line may run; any
// other command cannot be carried.
func (r *ifupdown) upCommand(p *Profile, s *stanza, cmd string) string {
	f := strings.Fields(cmd)
	bad := fmt.Sprintf("iface %s: up %q runs a command, which is not carried: give a NetworkManager file for %s in COPY_NMGR_FILES", s.name, cmd, s.name)
	if len(f) == 0 {
		return bad
	}
	f[0] = path.Base(f[0])
	if f[0] == "ip" && len(f) > 1 && (f[1] == "-4" || f[1] == "-6") {
		f = append(f[:1], f[2:]...)
	}
	switch {
	case len(f) >= 4 && f[0] == "ip" && slices.Contains([]string{"route", "ro", "r"}, f[1]) && slices.Contains([]string{"add", "a", "append", "replace"}, f[2]):
		rt, ok := ipRouteArgs(f[3:], s.name)
		if !ok {
			return bad
		}
		p.addRoute(rt)
	case len(f) >= 3 && f[0] == "route" && f[1] == "add":
		rt, ok := netToolsRoute(f[2:], s.name)
		if !ok {
			return bad
		}
		p.addRoute(rt)
	case len(f) == 6 && f[0] == "ip" && slices.Contains([]string{"addr", "address", "a"}, f[1]) && f[2] == "add" && f[4] == "dev" && f[5] == s.name:
		a, err := parsePrefix(f[3], -1)
		if err != nil {
			return bad
		}
		p.addAddress(a)
	default:
		return bad
	}
	return ""
}

// ipRouteArgs reads `ip route add DEST [via GW] [dev IF] [metric N]`.
func ipRouteArgs(a []string, iface string) (Route, bool) {
	if len(a) == 0 {
		return Route{}, false
	}
	var rt Route
	var via netip.Addr
	for i := 1; i < len(a); i += 2 {
		if i+1 >= len(a) {
			return Route{}, false
		}
		switch a[i] {
		case "via":
			v, err := parseAddr(a[i+1])
			if err != nil {
				return Route{}, false
			}
			via = v
		case "dev":
			if a[i+1] != iface {
				return Route{}, false
			}
		case "metric", "preference", "priority":
			n, err := strconv.ParseInt(a[i+1], 10, 64)
			if err != nil {
				return Route{}, false
			}
			rt.Metric = n
		default:
			return Route{}, false
		}
	}
	family := via
	if !family.IsValid() {
		family = netip.IPv4Unspecified()
		if strings.Contains(a[0], ":") {
			family = netip.IPv6Unspecified()
		}
	}
	to, err := parseDest(a[0], family)
	if err != nil {
		return Route{}, false
	}
	rt.To, rt.Via = to, via
	return rt, true
}

// netToolsRoute reads `route add [-net|-host] DEST [netmask M] [gw GW] [dev IF] [metric N]`.
func netToolsRoute(a []string, iface string) (Route, bool) {
	var rt Route
	var dest, mask string
	host := false
	for i := 0; i < len(a); i++ {
		next := func() (string, bool) {
			if i+1 >= len(a) {
				return "", false
			}
			i++
			return a[i], true
		}
		var ok bool
		switch a[i] {
		case "-net":
		case "-host":
			host = true
		case "netmask":
			if mask, ok = next(); !ok {
				return Route{}, false
			}
		case "gw":
			v, ok := next()
			g, err := parseAddr(v)
			if !ok || err != nil {
				return Route{}, false
			}
			rt.Via = g
		case "dev":
			if v, ok := next(); !ok || v != iface {
				return Route{}, false
			}
		case "metric":
			v, ok := next()
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				return Route{}, false
			}
			rt.Metric = n
		default:
			if dest != "" {
				return Route{}, false
			}
			dest = a[i]
		}
	}
	switch {
	case dest == "default":
		rt.To = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case host:
		a, err := parseAddr(dest)
		if err != nil {
			return Route{}, false
		}
		rt.To = netip.PrefixFrom(a, a.BitLen())
	default:
		a, err := parseAddr(dest)
		if err != nil {
			p, err := parsePrefix(dest, -1)
			if err != nil {
				return Route{}, false
			}
			rt.To = p.Masked()
			return rt, true
		}
		n := 32
		if mask != "" {
			if n, err = maskBits(mask); err != nil {
				return Route{}, false
			}
		}
		rt.To = netip.PrefixFrom(a, n).Masked()
	}
	return rt, true
}

// undoesUp says whether a down command only removes what an up command
// added (a route or an address), which NetworkManager does by itself.
func undoesUp(cmd string) bool {
	f := strings.Fields(cmd)
	if len(f) >= 3 && strings.HasSuffix(f[0], "ip") && slices.Contains([]string{"route", "r", "addr", "address", "a", "-4", "-6"}, f[1]) {
		return slices.Contains(f, "del") || slices.Contains(f, "delete") || slices.Contains(f, "flush")
	}
	return len(f) >= 2 && strings.HasSuffix(f[0], "route") && (f[1] == "del" || f[1] == "delete")
}

// unquote strips one pair of double quotes around a value.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

var macRE = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)

func isMAC(s string) bool { return macRE.MatchString(s) }

func copyIP(ip IP) IP {
	ip.Addresses = slices.Clone(ip.Addresses)
	ip.DNS = slices.Clone(ip.DNS)
	ip.Search = slices.Clone(ip.Search)
	ip.Routes = slices.Clone(ip.Routes)
	return ip
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

// setExtra sets a NetworkManager setting the model has no field for.
func (p *Profile) setExtra(key, value string) {
	if p.Extra == nil {
		p.Extra = map[string]string{}
	}
	p.Extra[key] = value
}

// rel turns a device path into an fs.FS name.
func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}
