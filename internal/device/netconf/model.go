// Package netconf reads how a Debian-family system sets up its network —
// ifupdown, netplan, dhcpcd, NetworkManager, systemd-networkd,
// wpa_supplicant, connman — into one model (Profile), and writes each
// setup as a NetworkManager keyfile that balenaOS picks up from
// resin-boot/system-connections. A setup it cannot write exactly is
// refused with the reason (Refusal), never dropped or written as something
// else: a device that comes up without its network is a truck roll.
package netconf

import (
	"net/netip"
	"path"
	"strings"
)

// Kind is the type of a connection.
type Kind string

// The kinds of connection this package writes.
const (
	Ethernet Kind = "ethernet"
	Wifi     Kind = "wifi"
	VLAN     Kind = "vlan"
	Bond     Kind = "bond"
)

// Method is how an address family is set up, in NetworkManager's words.
type Method string

// The methods. The zero Method is Auto.
const (
	Auto      Method = ""           // DHCP for IPv4; router advertisements (and DHCPv6 when they say so) for IPv6
	Manual    Method = "manual"     // static addresses only
	Disabled  Method = "disabled"   // no addresses of this family
	DHCPOnly  Method = "dhcp"       // IPv6: DHCPv6 without router advertisements
	LinkLocal Method = "link-local" // IPv4LL / IPv6 link-local only
	Ignore    Method = "ignore"     // IPv6: NetworkManager leaves it to the kernel
)

// IP is the setup of one address family.
type IP struct {
	Method    Method
	Addresses []netip.Prefix
	Gateway   netip.Addr // invalid: none
	DNS       []netip.Addr
	Search    []string
	Routes    []Route
	// IgnoreAutoDNS keeps the DNS servers DHCP offers out.
	IgnoreAutoDNS bool
	// Metric is the metric of the routes this setup adds; 0 leaves
	// NetworkManager's default.
	Metric int64
}

// Route is a static route.
type Route struct {
	To     netip.Prefix
	Via    netip.Addr // invalid: on the link
	Metric int64      // 0: none
}

// Security is how a Wi-Fi network authenticates.
type Security int

// The kinds of Wi-Fi security; only Open, PSK and SAE can be written from
// what wpa_supplicant, ifupdown, netplan, connman or config.json say.
const (
	PSK         Security = iota // WPA/WPA2 personal (the default)
	Open                        // no security at all
	SAE                         // WPA3 personal
	Unsupported                 // enterprise (EAP), WEP or unknown: see Why
)

// Profile is one connection a device has, in NetworkManager's terms.
type Profile struct {
	ID     string // connection.id
	Kind   Kind
	Source string // where it was read, for the log: a file and what in it

	// Interface is the device the source names (eth0, wlan0, bond0,
	// eth0.100); empty when it matches by Patterns or MAC only. A Wi-Fi
	// network is written for any wireless device, whatever the source
	// bound it to.
	Interface string
	// Patterns are interface name patterns (en*) the source matches on.
	Patterns []string
	// MAC is the hardware address the keyfile binds to (lower case): the
	// one the source names, or the interface's own permanent address
	// (see Bind), which survives balenaOS naming the device differently.
	MAC string
	// ClonedMAC is an address the source sets on the device.
	ClonedMAC string
	MTU       uint32
	// NoAutoconnect: the source does not bring the connection up by itself.
	NoAutoconnect bool

	// VLAN: its id and the parent interface (or, with ParentMAC, the
	// parent's hardware address).
	VLANID    int
	Parent    string
	ParentMAC string

	// Bond: the bonding options by their kernel names (mode, miimon, ...).
	BondOptions map[string]string
	// Controller is the bond a port belongs to (its interface name); a
	// port has no addresses of its own.
	Controller string

	// Wi-Fi.
	SSID     string
	PSK      string // passphrase or 64 hex digits; empty for Open
	Security Security
	Why      string // for Unsupported: what the network uses

	IPv4, IPv6 IP

	// Extra are NetworkManager settings the source passes through as they
	// are (netplan's networkmanager.passthrough): "group.key" → value.
	Extra map[string]string

	// Keyfile is a NetworkManager file carried as it is: it holds
	// everything NetworkManager knows about the connection.
	Keyfile []byte
	// ConnUUID is the connection's own UUID where the source keeps one
	// (a NetworkManager file, netplan's networkmanager.uuid); empty:
	// UUID derives one.
	ConnUUID string

	fromWPA bool // a wpa_supplicant network: dhcpcd or networkd address it
}

// Refusal is a setup that cannot be carried: the device would come up
// without it, so stage 1 refuses rather than drop it.
type Refusal struct {
	Source string // the file, and what in it
	Why    string // what cannot be carried
	// Key names the setup in NETWORK_SKIP: an interface name or a
	// NetworkManager connection UUID; empty when only a fix of the source
	// (or COPY_NMGR_FILES) helps.
	Key string
}

func (r Refusal) String() string { return r.Source + ": " + r.Why }

// Carries says whether the profile is for the interface name with the
// hardware address mac: by name, by pattern or by address. A Wi-Fi
// profile carries any wireless interface (isWifi).
func (p *Profile) Carries(name, mac string, isWifi bool) bool {
	if p.Controller != "" {
		return false // a bond port's addresses are the bond's
	}
	if p.Kind == Wifi {
		if !isWifi {
			return false
		}
		if p.Keyfile == nil || p.Interface == "" && p.MAC == "" && len(p.Patterns) == 0 {
			return true // written for, or bound to, any wireless device
		}
	}
	if p.Kind == Ethernet && p.Interface == "" && p.MAC == "" && len(p.Patterns) == 0 {
		return !isWifi // NetworkManager puts a profile bound to nothing on any wired port
	}
	if p.Interface == name && name != "" {
		return true
	}
	if p.MAC != "" && strings.EqualFold(p.MAC, mac) && p.Kind != VLAN {
		return true
	}
	for _, pat := range p.Patterns {
		if globMatch(pat, name) {
			return true
		}
	}
	return false
}

// namesLink says whether the profile's name or patterns name the link.
func (p *Profile) namesLink(name string) bool {
	if p.Interface != "" {
		return p.Interface == name
	}
	for _, pat := range p.Patterns {
		if globMatch(pat, name) {
			return true
		}
	}
	return false
}

// PlainDHCP says whether the profile is what balenaOS does on an ethernet
// port without any profile: DHCP and router advertisements, nothing else.
func (p *Profile) PlainDHCP() bool {
	return p.Kind == Ethernet && p.Keyfile == nil && p.Controller == "" && p.ClonedMAC == "" && p.MTU == 0 &&
		!p.NoAutoconnect && len(p.Extra) == 0 && p.IPv4.plainAuto() && p.IPv6.plainAuto()
}

func (ip *IP) plainAuto() bool {
	return ip.Method == Auto && len(ip.Addresses) == 0 && !ip.Gateway.IsValid() && len(ip.DNS) == 0 &&
		len(ip.Search) == 0 && len(ip.Routes) == 0 && !ip.IgnoreAutoDNS && ip.Metric == 0
}

// addDNS puts each server into the family it belongs to.
func (p *Profile) addDNS(servers ...netip.Addr) {
	for _, s := range servers {
		if s.Is4() || s.Is4In6() {
			p.IPv4.DNS = append(p.IPv4.DNS, s.Unmap())
		} else {
			p.IPv6.DNS = append(p.IPv6.DNS, s)
		}
	}
}

// addAddress puts a static address into its family. A family that was
// off becomes manual; one with DHCP or router advertisements keeps them,
// and the address is added beside what they give (NetworkManager does
// that with addresses of an auto setup).
func (p *Profile) addAddress(a netip.Prefix) {
	ip := p.family(a.Addr())
	ip.Addresses = append(ip.Addresses, a)
	if ip.Method == Disabled {
		ip.Method = Manual
	}
}

// family is the setup of the address's family.
func (p *Profile) family(a netip.Addr) *IP {
	if a.Is4() || a.Is4In6() {
		return &p.IPv4
	}
	return &p.IPv6
}

// globMatch matches shell-style patterns (*, ?, [...]) as systemd and
// NetworkManager match interface names.
func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
