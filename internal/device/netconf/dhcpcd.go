package netconf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Dhcpcd is what a dhcpcd.conf sets up beyond DHCP on every interface:
// the `interface NAME` and `ssid NAME` blocks that change addressing.
type Dhcpcd struct {
	Interface map[string]*Profile // by interface name; addressing only
	SSID      map[string]*Profile // by SSID: the addressing of that Wi-Fi network
	Deny      []string            // denyinterfaces: left to something else
	Refused   []Refusal
}

// dhcpcdIgnored are options that tune DHCP itself, or say nothing
// NetworkManager would do differently.
var dhcpcdIgnored = map[string]bool{
	"hostname": true, "clientid": true, "duid": true, "persistent": true, "option": true, "nooption": true,
	"require": true, "slaac": true, "vendorclassid": true, "nohook": true, "noarp": true, "env": true,
	"timeout": true, "reboot": true, "leasetime": true, "background": true, "ipv6rs": true, "ia_na": true,
	"ia_pd": true, "ia_ta": true, "controlgroup": true, "allowinterfaces": true,
	"hostname_short": true, "fqdn": true, "userclass": true, "vendor": true, "script": true, "waitip": true,
	"quiet": true, "release": true, "lastleaseextend": true, "nodhcp6": true, "nodelay": true,
	"anonymous": true, "randomise_hwaddr": true, "dhcp": true, "dhcp6": true, "noalias": true, "nodev": true,
	"destination": true, "xidhwaddr": true, "reject": true, "whitelist": true, "blacklist": true,
}

// ParseDhcpcd reads the blocks of a dhcpcd.conf that set up addresses.
func ParseDhcpcd(data, source string) Dhcpcd {
	d := Dhcpcd{Interface: map[string]*Profile{}, SSID: map[string]*Profile{}}
	var cur *Profile
	var block string
	for n, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		where := fmt.Sprintf("%s:%d", source, n+1)
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		refuse := func(format string, a ...any) {
			key := ""
			if strings.HasPrefix(block, "interface ") {
				key = strings.TrimPrefix(block, "interface ")
			}
			what := block
			if what == "" {
				what = "all interfaces"
			}
			d.Refused = append(d.Refused, Refusal{Source: where, Why: what + ": " + fmt.Sprintf(format, a...), Key: key})
		}
		switch word {
		case "interface":
			cur, block = d.block(d.Interface, rest, where), "interface "+rest
			continue
		case "ssid":
			cur, block = d.block(d.SSID, rest, where), "ssid "+rest
			continue
		case "profile":
			cur, block = &Profile{}, "profile "+rest // used only by fallback and arping, refused below
			continue
		case "denyinterfaces":
			d.Deny = append(d.Deny, strings.Fields(rest)...)
			continue
		}
		if cur == nil {
			if word == "static" || word == "fallback" || word == "arping" || word == "inform" {
				refuse("%s outside an interface block (for every interface) is not carried", word)
			}
			continue
		}
		switch word {
		case "static":
			k, v, _ := strings.Cut(rest, "=")
			if why := dhcpcdStatic(cur, strings.TrimSpace(k), strings.Fields(v)); why != "" {
				refuse("%s", why)
			}
		case "metric":
			m, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				refuse("metric %q", rest)
			}
			cur.IPv4.Metric, cur.IPv6.Metric = m, m
		case "noipv4":
			cur.IPv4.Method = Disabled
		case "noipv6", "noipv6rs":
			cur.IPv6.Method = Disabled
		case "ipv4only":
			cur.IPv6.Method = Disabled
		case "ipv6only":
			cur.IPv4.Method = Disabled
		case "noipv4ll":
		case "fallback", "arping":
			refuse("%s (a setup chosen at boot by what the network answers) is not carried", word)
		case "inform", "inform6", "request":
			refuse("%s (a static address announced over DHCP) is not carried", word)
		case "noup", "nolink":
			refuse("%s is not carried", word)
		default:
			if !dhcpcdIgnored[word] {
				refuse("the option %s is not carried", word)
			}
		}
	}
	return d
}

func (d *Dhcpcd) block(m map[string]*Profile, name, where string) *Profile {
	if p := m[name]; p != nil {
		return p
	}
	p := &Profile{ID: name, Kind: Ethernet, Source: where, Interface: name}
	m[name] = p
	return p
}

// dhcpcdStatic applies one `static key=value` option.
func dhcpcdStatic(p *Profile, key string, vals []string) string {
	switch key {
	case "ip_address", "ip6_address":
		for _, v := range vals {
			a, err := parsePrefix(v, 24) // dhcpcd takes a bare IPv4 address as a /24
			if err != nil {
				return fmt.Sprintf("static %s=%s: %v", key, v, err)
			}
			if a.Addr().Is4() {
				// A static IPv4 address replaces DHCP.
				p.IPv4.Method = Manual
			}
			p.addAddress(a)
		}
	case "routers":
		for i, v := range vals {
			a, err := parseAddr(v)
			if err != nil {
				return fmt.Sprintf("static routers=%s: %v", v, err)
			}
			if i == 0 {
				p.family(a).Gateway = a
			} else {
				p.addRoute(Route{To: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Via: a})
			}
		}
	case "domain_name_servers":
		for _, v := range vals {
			a, err := parseAddr(v)
			if err != nil {
				return fmt.Sprintf("static domain_name_servers=%s: %v", v, err)
			}
			p.addDNS(a)
		}
	case "domain_search", "domain_name":
		p.IPv4.Search = appendNew(p.IPv4.Search, vals...)
	default:
		return "static " + key + " is not carried"
	}
	return ""
}

// Static says whether the block sets anything beyond DHCP.
func (p *Profile) Static() bool { return !p.IPv4.plainAuto() || !p.IPv6.plainAuto() }
