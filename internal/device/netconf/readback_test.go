package netconf

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv/nmread"
)

// nmTypes are NetworkManager's names for the kinds.
var nmTypes = map[Kind]string{Ethernet: "802-3-ethernet", Wifi: "802-11-wireless", VLAN: "vlan", Bond: "bond"}

// differences lists where NetworkManager's reading of a keyfile differs
// from the profile it was written from: the test of "read back exactly".
func differences(p *Profile, c nmread.Conn) []string {
	var d []string
	check := func(what string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			d = append(d, fmt.Sprintf("%s: NetworkManager reads %v, the source says %v", what, got, want))
		}
	}
	if c.Error != "" {
		return []string{"libnm refuses the file: " + c.Error}
	}
	check("id", c.ID, p.ID)
	check("type", c.Type, nmTypes[p.Kind])
	check("uuid", c.UUID, p.UUID())
	check("autoconnect", c.Autoconnect, !p.NoAutoconnect)
	wantIface := p.Interface
	if p.MAC != "" && p.Kind == Ethernet || p.Kind == Wifi {
		wantIface = ""
	}
	check("interface-name", c.InterfaceName, wantIface)
	patterns := p.Patterns
	mac := p.MAC
	switch p.Kind {
	case VLAN:
		mac = p.ParentMAC
	case Wifi:
		mac, patterns = "", nil
	}
	check("match.interface-name", strings.Join(c.MatchInterfaceName, ","), strings.Join(patterns, ","))
	if p.Kind != Bond {
		check("mac-address", strings.ToLower(c.MAC), mac)
		check("cloned-mac-address", strings.ToLower(c.ClonedMAC), p.ClonedMAC)
	}
	if p.Kind == Ethernet || p.Kind == Wifi {
		check("mtu", c.MTU, p.MTU)
	}
	check("master", c.Controller, p.Controller)
	if p.Controller != "" {
		check("slave-type", c.PortType, "bond")
		if c.IPv4 != nil || c.IPv6 != nil {
			d = append(d, "a bond port has addresses of its own")
		}
		return d
	}
	switch p.Kind {
	case Wifi:
		check("ssid", c.SSIDHex, hex.EncodeToString([]byte(p.SSID)))
		km := map[Security]string{PSK: "wpa-psk", SAE: "sae", Open: ""}[p.Security]
		check("key-mgmt", c.KeyMgmt, km)
		check("psk", c.PSK, p.PSK)
		check("psk-flags", c.PSKFlags, 0)
	case VLAN:
		check("vlan.id", c.VLANID, p.VLANID)
		if p.ParentMAC == "" {
			check("vlan.parent", c.VLANParent, p.Parent)
		}
	case Bond:
		want := maps.Clone(p.BondOptions)
		if want == nil {
			want = map[string]string{}
		}
		if _, ok := want["mode"]; !ok {
			want["mode"] = "balance-rr"
		}
		check("bond options", fmt.Sprint(c.BondOptions), fmt.Sprint(want))
	}
	d = append(d, ipDifferences("ipv4", &p.IPv4, c.IPv4)...)
	d = append(d, ipDifferences("ipv6", &p.IPv6, c.IPv6)...)
	return d
}

func ipDifferences(family string, ip *IP, c *nmread.IP) []string {
	if c == nil {
		return []string{family + ": no setting"}
	}
	var d []string
	check := func(what string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			d = append(d, fmt.Sprintf("%s.%s: NetworkManager reads %v, the source says %v", family, what, got, want))
		}
	}
	method := map[Method]string{Auto: "auto", Manual: "manual", Disabled: "disabled", DHCPOnly: "dhcp", LinkLocal: "link-local", Ignore: "ignore"}[ip.Method]
	check("method", c.Method, method)
	var addrs, dns, routes []string
	for _, a := range ip.Addresses {
		addrs = append(addrs, a.String())
	}
	for _, a := range ip.DNS {
		dns = append(dns, a.String())
	}
	for _, r := range ip.Routes {
		via := ""
		if r.Via.IsValid() {
			via = r.Via.String()
		}
		m := r.Metric
		if m == 0 {
			m = -1
		}
		routes = append(routes, r.To.String()+","+via+","+strconv.FormatInt(m, 10))
	}
	check("addresses", c.Addresses, addrs)
	gw := ""
	if ip.Gateway.IsValid() {
		gw = ip.Gateway.String()
	}
	check("gateway", c.Gateway, gw)
	check("dns", c.DNS, dns)
	check("dns-search", c.DNSSearch, ip.Search)
	check("routes", c.Routes, routes)
	check("ignore-auto-dns", c.IgnoreAutoDNS, ip.IgnoreAutoDNS)
	metric := ip.Metric
	if metric == 0 {
		metric = -1
	}
	check("route-metric", c.RouteMetric, metric)
	return d
}

// readBack writes every profile, has libnm read the files and fails the
// test where NetworkManager reads something other than the profile.
func readBack(t *testing.T, ps []*Profile) {
	t.Helper()
	kfs := keyfiles(t, ps)
	for i, c := range nmread.ReadData(t, kfs...) {
		if p := ps[i]; p.Keyfile == nil {
			if d := differences(p, c); len(d) > 0 {
				t.Errorf("%s (%s):\n  %s\n%s", p.Label(), p.Source, strings.Join(d, "\n  "), kfs[i])
			}
		} else if c.Error != "" {
			t.Errorf("%s: the carried file is refused by libnm: %s", p.Source, c.Error)
		}
	}
}

// keyfiles writes every profile, failing the test on one that cannot be.
func keyfiles(t *testing.T, ps []*Profile) [][]byte {
	t.Helper()
	var kfs [][]byte
	for _, p := range ps {
		kf, err := Keyfile(p)
		if err != nil {
			t.Fatalf("%s: %v", p.Label(), err)
		}
		kfs = append(kfs, kf)
	}
	return kfs
}

// sorted keeps test tables independent of map order.
func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
