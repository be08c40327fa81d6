package netconf

import (
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// netplanDirs are where netplan reads YAML, later ones winning for a file
// of the same name.
var netplanDirs = []string{"/lib/netplan", "/usr/lib/netplan", "/etc/netplan", "/run/netplan"}

// ReadNetplan reads the netplan setup under fsys: the YAML files of every
// netplan directory merged as netplan merges them (in file name order,
// mappings merged, lists appended), one profile per ethernet, VLAN and
// bond, one per Wi-Fi access point, and notes on what netplan itself does
// not pass on.
func ReadNetplan(fsys fs.FS) ([]*Profile, []Refusal, []string) {
	byName := map[string]string{}
	for _, dir := range netplanDirs {
		ms, _ := fs.Glob(fsys, rel(dir)+"/*.yaml")
		for _, m := range ms {
			byName[path.Base(m)] = m
		}
	}
	var names []string
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	var refused []Refusal
	merged := map[string]any{}
	origin := map[string]string{} // definition id → file that first defined it
	for _, n := range names {
		f := "/" + byName[n]
		data, err := fs.ReadFile(fsys, byName[n])
		if err != nil {
			refused = append(refused, Refusal{Source: f, Why: fmt.Sprintf("cannot be read: %v", err)})
			continue
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			refused = append(refused, Refusal{Source: f, Why: fmt.Sprintf("is not valid YAML: %v", err)})
			continue
		}
		if net, ok := doc["network"].(map[string]any); ok {
			for _, sec := range netplanSections {
				if defs, ok := net[sec].(map[string]any); ok {
					for id := range defs {
						if origin[id] == "" {
							origin[id] = f
						}
					}
				}
			}
		}
		mergeYAML(merged, doc)
	}
	np := &netplan{origin: origin, refused: refused}
	ps := np.profiles(merged)
	return ps, np.refused, np.notes
}

// mergeYAML merges src into dst: mappings key by key, lists appended,
// anything else replaced.
func mergeYAML(dst, src map[string]any) {
	for k, v := range src {
		switch sv := v.(type) {
		case map[string]any:
			if dv, ok := dst[k].(map[string]any); ok {
				mergeYAML(dv, sv)
				continue
			}
		case []any:
			if dv, ok := dst[k].([]any); ok {
				dst[k] = append(dv, sv...)
				continue
			}
		}
		dst[k] = v
	}
}

type netplan struct {
	origin   map[string]string
	refused  []Refusal
	notes    []string
	renderer string
}

func (np *netplan) refuse(id, key, format string, a ...any) {
	src := np.origin[id]
	if src == "" {
		src = "netplan"
	}
	np.refused = append(np.refused, Refusal{Source: src + ": " + id, Why: fmt.Sprintf(format, a...), Key: key})
}

// netplanSections are the device types; those not listed are refused.
var netplanSections = []string{"ethernets", "wifis", "vlans", "bonds"}

func (np *netplan) profiles(doc map[string]any) []*Profile {
	net, _ := doc["network"].(map[string]any)
	if net == nil {
		return nil
	}
	np.renderer, _ = net["renderer"].(string)
	for _, k := range sortedKeys(net) {
		v := net[k]
		switch {
		case k == "version" || k == "renderer" || slices.Contains(netplanSections, k):
		default:
			if defs, ok := v.(map[string]any); ok {
				for id := range defs {
					np.refuse(id, id, "netplan %s (%s) are not carried: give a NetworkManager file for it in COPY_NMGR_FILES", k, id)
				}
			} else {
				np.refuse("network", "", "the netplan key network.%s is not carried", k)
			}
		}
	}
	eths := defsOf(net, "ethernets")
	// The interface each ethernet definition is: its id, or what it matches.
	ifaceOf := map[string]*Profile{}
	var out []*Profile
	for _, id := range sortedKeys(eths) {
		p := np.define(id, Ethernet, eths[id])
		if p != nil {
			ifaceOf[id] = p
			out = append(out, p)
		}
	}
	bonds := defsOf(net, "bonds")
	for _, id := range sortedKeys(bonds) {
		p := np.define(id, Bond, bonds[id])
		if p == nil {
			continue
		}
		out = append(out, p)
		for _, port := range strs(bonds[id]["interfaces"]) {
			pp := ifaceOf[port]
			if pp == nil {
				np.refuse(id, id, "bond %s takes %s, which is no ethernet netplan defines", id, port)
				continue
			}
			pp.Controller = p.Interface
			pp.ID = id + " port " + port
		}
		if params, ok := bonds[id]["parameters"].(map[string]any); ok {
			np.bondParameters(id, p, params)
		}
		ifaceOf[id] = p
	}
	vlans := defsOf(net, "vlans")
	for _, id := range sortedKeys(vlans) {
		p := np.define(id, VLAN, vlans[id])
		if p == nil {
			continue
		}
		n, err := strconv.Atoi(fmt.Sprint(vlans[id]["id"]))
		link, _ := vlans[id]["link"].(string)
		parent := ifaceOf[link]
		switch {
		case err != nil:
			np.refuse(id, id, "VLAN %s has no id", id)
			continue
		case parent == nil:
			np.refuse(id, id, "VLAN %s is on %q, which netplan does not define", id, link)
			continue
		}
		p.VLANID = n
		p.Parent, p.ParentMAC = parent.Interface, parent.MAC
		if p.Parent == "" && p.ParentMAC == "" {
			np.refuse(id, id, "VLAN %s is on %s, which matches interfaces by pattern only", id, link)
			continue
		}
		out = append(out, p)
	}
	wifis := defsOf(net, "wifis")
	for _, id := range sortedKeys(wifis) {
		base := np.define(id, Wifi, wifis[id])
		if base == nil {
			continue
		}
		aps, _ := wifis[id]["access-points"].(map[string]any)
		for _, ssid := range sortedKeys(aps) {
			ap, _ := aps[ssid].(map[string]any)
			if p := np.accessPoint(id, base, ssid, ap); p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// defsOf returns the definitions of one section.
func defsOf(net map[string]any, section string) map[string]map[string]any {
	out := map[string]map[string]any{}
	defs, _ := net[section].(map[string]any)
	for id, v := range defs {
		m, _ := v.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		out[id] = m
	}
	return out
}

// strs reads a YAML list of strings.
func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// yamlBool reads a netplan boolean (true/false, yes/no, on/off, y/n).
func yamlBool(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		switch strings.ToLower(b) {
		case "true", "yes", "on", "y":
			return true, true
		case "false", "no", "off", "n":
			return false, true
		}
	}
	return false, false
}

// netplanCommon are the keys of every device definition this reader
// carries or that change nothing NetworkManager does differently.
var netplanCommon = []string{"match", "set-name", "renderer", "dhcp4", "dhcp6", "dhcp4-overrides", "dhcp6-overrides",
	"addresses", "gateway4", "gateway6", "nameservers", "routes", "mtu", "macaddress", "optional", "link-local",
	"accept-ra", "networkmanager", "critical", "activation-mode", "wakeonlan", "ipv6-privacy", "optional-addresses",
	"ipv6-address-generation",
	"emit-lldp", "receive-checksum-offload", "transmit-checksum-offload", "tcp-segmentation-offload",
	"tcp6-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload", "large-receive-offload"}

// define reads what every device definition has: how it finds its
// device, addressing, DNS, routes.
func (np *netplan) define(id string, kind Kind, d map[string]any) *Profile {
	p := &Profile{ID: id, Kind: kind, Source: np.origin[id] + ": " + id, Interface: id}
	extra := map[Kind][]string{Wifi: {"access-points", "wakeonwlan", "regulatory-domain"}, VLAN: {"id", "link"},
		Bond: {"interfaces", "parameters"}}[kind]
	for k := range d {
		if !slices.Contains(netplanCommon, k) && !slices.Contains(extra, k) {
			np.refuse(id, id, "%s: the netplan key %s is not carried", id, k)
			return nil
		}
	}
	if r, _ := d["renderer"].(string); r != "" && r != "networkd" && r != "NetworkManager" {
		np.refuse(id, id, "%s: renderer %s", id, r)
		return nil
	}
	if m, ok := d["match"].(map[string]any); ok {
		p.Interface = ""
		if len(m) == 0 && kind != Wifi {
			p.Patterns = []string{"*"} // an empty match takes every device
		}
		for k, v := range m {
			s := fmt.Sprint(v)
			switch k {
			case "name":
				if strings.ContainsAny(s, "*?[") {
					p.Patterns = []string{s}
				} else {
					p.Interface = s
				}
			case "macaddress":
				p.MAC = strings.ToLower(s)
			case "driver":
				p.setExtra("match.driver", strings.Join(strsOrOne(v), ";")+";")
			default:
				np.refuse(id, id, "%s: match.%s is not carried", id, k)
				return nil
			}
		}
		if set, _ := d["set-name"].(string); set != "" {
			if p.MAC == "" {
				np.refuse(id, id, "%s: set-name %s without match.macaddress: balenaOS would not rename the device", id, set)
				return nil
			}
			p.Interface = set
		}
	} else if _, ok := d["set-name"]; ok {
		np.refuse(id, id, "%s: set-name without match", id)
		return nil
	}
	renderer := np.renderer
	if r, _ := d["renderer"].(string); r != "" {
		renderer = r
	}
	dhcp4, _ := yamlBool(d["dhcp4"])
	dhcp6, _ := yamlBool(d["dhcp6"])
	p.IPv4.Method, p.IPv6.Method = Disabled, Disabled
	if dhcp4 {
		p.IPv4.Method = Auto
	}
	if dhcp6 {
		p.IPv6.Method = Auto
	}
	for _, a := range strs(d["addresses"]) {
		if strings.HasPrefix(a, "map[") {
			np.refuse(id, id, "%s: an address with options (label, lifetime) is not carried", id)
			return nil
		}
		pf, err := parsePrefix(a, -1)
		if err != nil {
			np.refuse(id, id, "%s: address %q: %v", id, a, err)
			return nil
		}
		p.addAddress(pf)
	}
	if ra, ok := yamlBool(d["accept-ra"]); ok {
		if ra && p.IPv6.Method == Disabled {
			p.IPv6.Method = Auto
		}
		if !ra && dhcp6 {
			np.refuse(id, id, "%s: dhcp6 with accept-ra false", id)
			return nil
		}
	} else if p.IPv6.Method == Disabled && renderer != "NetworkManager" {
		// networkd takes router advertisements unless told not to.
		p.IPv6.Method = Auto
	} else if p.IPv6.Method == Disabled {
		// netplan tells NetworkManager to leave IPv6 alone.
		p.IPv6.Method = Ignore
	}
	if ll := strs(d["link-local"]); d["link-local"] != nil {
		if slices.Contains(ll, "ipv4") && p.IPv4.Method == Disabled {
			p.IPv4.Method = LinkLocal
		}
	}
	for fam, key := range map[*IP]string{&p.IPv4: "gateway4", &p.IPv6: "gateway6"} {
		if v, ok := d[key].(string); ok {
			a, err := parseAddr(v)
			if err != nil {
				np.refuse(id, id, "%s: %s %q: %v", id, key, v, err)
				return nil
			}
			fam.Gateway = a
		}
	}
	if ns, ok := d["nameservers"].(map[string]any); ok {
		for _, s := range strs(ns["addresses"]) {
			a, err := parseAddr(s)
			if err != nil {
				np.refuse(id, id, "%s: nameserver %q: %v", id, s, err)
				return nil
			}
			p.addDNS(a)
		}
		search := strs(ns["search"])
		p.IPv4.Search = appendNew(p.IPv4.Search, search...)
		if p.IPv6.Method != Disabled && len(search) > 0 {
			p.IPv6.Search = appendNew(p.IPv6.Search, search...)
		}
	}
	if rs, ok := d["routes"].([]any); ok {
		for _, r := range rs {
			rm, _ := r.(map[string]any)
			rt, why := netplanRoute(rm)
			if why != "" {
				np.refuse(id, id, "%s: %s", id, why)
				return nil
			}
			p.addRoute(rt)
		}
	}
	for fam, key := range map[*IP]string{&p.IPv4: "dhcp4-overrides", &p.IPv6: "dhcp6-overrides"} {
		o, _ := d[key].(map[string]any)
		for k, v := range o {
			switch k {
			case "use-dns":
				if b, ok := yamlBool(v); ok && !b {
					if renderer == "NetworkManager" {
						// netplan does not pass it on to NetworkManager
						// (Debian 12's netplan): the device takes DHCP's
						// DNS, and balenaOS will too.
						np.notes = append(np.notes, fmt.Sprintf("%s: %s.use-dns false is not passed on to NetworkManager by netplan: DHCP's DNS servers are used, now and on balenaOS", id, key))
						continue
					}
					fam.IgnoreAutoDNS = true
				}
			case "route-metric":
				n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
				if err != nil {
					np.refuse(id, id, "%s: %s.route-metric %v", id, key, v)
					return nil
				}
				fam.Metric = n
			case "hostname", "send-hostname", "use-hostname", "use-mtu", "use-ntp", "use-domains":
			default:
				np.refuse(id, id, "%s: %s.%s is not carried", id, key, k)
				return nil
			}
		}
	}
	if v, ok := d["mtu"]; ok {
		n, err := strconv.ParseUint(fmt.Sprint(v), 10, 32)
		if err != nil {
			np.refuse(id, id, "%s: mtu %v", id, v)
			return nil
		}
		p.MTU = uint32(n)
	}
	if v, ok := d["macaddress"].(string); ok {
		p.ClonedMAC = strings.ToLower(v)
	}
	if v, ok := yamlBool(d["ipv6-privacy"]); ok && v {
		p.setExtra("ipv6.ip6-privacy", "2")
	}
	if v, _ := d["ipv6-address-generation"].(string); v != "" {
		p.setExtra("ipv6.addr-gen-mode", v)
	}
	if m, _ := d["activation-mode"].(string); m == "manual" || m == "off" {
		p.NoAutoconnect = true
	}
	if nm, ok := d["networkmanager"].(map[string]any); ok && kind != Wifi {
		np.applyNM(p, nm)
	}
	return p
}

// strsOrOne reads a string or a list of strings.
func strsOrOne(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	return strs(v)
}

// applyNM takes netplan's networkmanager block: the connection's name and
// UUID, and the settings it passes through to NetworkManager.
func (np *netplan) applyNM(p *Profile, nm map[string]any) {
	if name, _ := nm["name"].(string); name != "" {
		p.ID = name
	}
	if uuid, _ := nm["uuid"].(string); uuid != "" {
		p.ConnUUID = uuid
	}
	if pt, ok := nm["passthrough"].(map[string]any); ok {
		for k, v := range pt {
			if !strings.Contains(k, ".") {
				continue
			}
			p.setExtra(k, fmt.Sprint(v))
		}
	}
}

// netplanRoute reads one entry of routes.
func netplanRoute(r map[string]any) (Route, string) {
	var rt Route
	for k := range r {
		switch k {
		case "to", "via", "metric", "on-link":
		case "table", "scope", "type", "from", "mtu", "congestion-window", "advertised-receive-window":
			return rt, "a route with " + k + " is not carried"
		default:
			return rt, "route key " + k
		}
	}
	via, _ := r["via"].(string)
	if via != "" {
		a, err := parseAddr(via)
		if err != nil {
			return rt, fmt.Sprintf("route via %q: %v", via, err)
		}
		rt.Via = a
	}
	family := rt.Via
	to := fmt.Sprint(r["to"])
	if !family.IsValid() {
		family = mustFamily(to)
	}
	dst, err := parseDest(to, family)
	if err != nil {
		return rt, fmt.Sprintf("route to %q: %v", to, err)
	}
	rt.To = dst
	if m, ok := r["metric"]; ok {
		n, err := strconv.ParseInt(fmt.Sprint(m), 10, 64)
		if err != nil {
			return rt, fmt.Sprintf("route metric %v", m)
		}
		rt.Metric = n
	}
	return rt, ""
}

// bondParameters maps netplan's bond parameters to the kernel's names.
func (np *netplan) bondParameters(id string, p *Profile, params map[string]any) {
	names := map[string]string{
		"mode": "mode", "lacp-rate": "lacp_rate", "mii-monitor-interval": "miimon", "min-links": "min_links",
		"transmit-hash-policy": "xmit_hash_policy", "ad-select": "ad_select", "all-slaves-active": "all_slaves_active",
		"all-members-active": "all_slaves_active", "arp-interval": "arp_interval", "arp-ip-targets": "arp_ip_target",
		"arp-validate": "arp_validate", "arp-all-targets": "arp_all_targets", "up-delay": "updelay", "down-delay": "downdelay",
		"fail-over-mac-policy": "fail_over_mac", "gratuitous-arp": "num_grat_arp", "gratuitous-arp-count": "num_grat_arp",
		"packets-per-slave": "packets_per_slave", "packets-per-member": "packets_per_slave",
		"primary-reselect-policy": "primary_reselect", "resend-igmp": "resend_igmp", "learn-packet-interval": "lp_interval",
		"primary": "primary",
	}
	if p.BondOptions == nil {
		p.BondOptions = map[string]string{}
	}
	for k, v := range params {
		name, ok := names[k]
		if !ok {
			np.refuse(id, id, "bond %s: parameter %s is not carried", id, k)
			continue
		}
		val := fmt.Sprint(v)
		switch {
		case k == "arp-ip-targets":
			val = strings.Join(strs(v), ",")
		case k == "mode":
			val = bondMode(val)
		default:
			if b, ok := v.(bool); ok {
				val = map[bool]string{true: "1", false: "0"}[b]
			}
		}
		p.BondOptions[name] = val
	}
}

// accessPoint makes the profile of one Wi-Fi network of a wifis definition.
func (np *netplan) accessPoint(id string, base *Profile, ssid string, ap map[string]any) *Profile {
	p := *base
	p.IPv4, p.IPv6 = copyIP(base.IPv4), copyIP(base.IPv6)
	p.ID, p.SSID, p.Source = ssid, ssid, base.Source+" "+strconv.Quote(ssid)
	p.Interface, p.MAC, p.Patterns = base.Interface, "", nil
	p.Extra = nil
	for k, v := range base.Extra {
		p.setExtra(k, v)
	}
	// The security first (the password, then auth), then what makes
	// the network one a keyfile of ours cannot describe.
	p.Security = Open
	if pw, ok := ap["password"]; ok {
		p.PSK, p.Security = fmt.Sprint(pw), PSK
	}
	auth, _ := ap["auth"].(map[string]any)
	if pw, ok := auth["password"]; ok {
		p.PSK, p.Security = fmt.Sprint(pw), PSK
	}
	var why []string
	switch km := fmt.Sprint(auth["key-management"]); km {
	case "<nil>":
	case "none":
		p.Security = Open
	case "psk":
		p.Security = PSK
	case "sae":
		p.Security = SAE
	default:
		why = append(why, "key-management "+km)
	}
	for _, ak := range sortedKeys(auth) {
		if ak != "key-management" && ak != "password" {
			why = append(why, "auth."+ak)
		}
	}
	for _, k := range sortedKeys(ap) {
		v := ap[k]
		switch k {
		case "password", "auth":
		case "mode":
			if m := fmt.Sprint(v); m != "infrastructure" {
				why = append(why, "mode "+m)
			}
		case "hidden":
			// Every network is written to be probed for even when
			// hidden.
		case "networkmanager":
			if nm, ok := v.(map[string]any); ok {
				np.applyNM(&p, nm)
			}
		default:
			why = append(why, "the access point option "+k)
		}
	}
	if len(why) > 0 {
		p.Security, p.Why = Unsupported, why[0]
	}
	if p.Security == Open || p.Security == Unsupported {
		p.PSK = ""
	}
	return &p
}

// mustFamily guesses the family of a destination without a gateway.
func mustFamily(to string) netip.Addr {
	if strings.Contains(to, ":") {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}
