package netconf

import (
	"fmt"
	"strings"
	"testing"
)

// describe renders a profile in one line, fields that are set only, so
// that reader tables read like the setups they expect.
func describe(p *Profile) string {
	var b []string
	add := func(format string, a ...any) { b = append(b, fmt.Sprintf(format, a...)) }
	add("%s %q", p.Kind, p.ID)
	if p.Interface != "" {
		add("if=%s", p.Interface)
	}
	if len(p.Patterns) > 0 {
		add("match=%s", strings.Join(p.Patterns, ","))
	}
	if p.MAC != "" {
		add("mac=%s", p.MAC)
	}
	if p.ClonedMAC != "" {
		add("cloned=%s", p.ClonedMAC)
	}
	if p.MTU != 0 {
		add("mtu=%d", p.MTU)
	}
	if p.NoAutoconnect {
		add("noauto")
	}
	if p.Kind == VLAN {
		add("vlan=%d parent=%s%s", p.VLANID, p.Parent, p.ParentMAC)
	}
	if len(p.BondOptions) > 0 {
		var o []string
		for _, k := range sortedKeys(p.BondOptions) {
			o = append(o, k+"="+p.BondOptions[k])
		}
		add("bond=%s", strings.Join(o, ","))
	}
	if p.Controller != "" {
		add("port-of=%s", p.Controller)
		return strings.Join(b, " ")
	}
	if p.Kind == Wifi {
		add("ssid=%q", p.SSID)
		switch p.Security {
		case PSK:
			add("psk=%q", p.PSK)
		case SAE:
			add("sae=%q", p.PSK)
		case Open:
			add("open")
		default:
			add("unsupported(%s)", p.Why)
		}
	}
	for _, f := range []struct {
		name string
		ip   *IP
	}{{"v4", &p.IPv4}, {"v6", &p.IPv6}} {
		ip := f.ip
		m := map[Method]string{Auto: "auto", Manual: "manual", Disabled: "off", DHCPOnly: "dhcp", LinkLocal: "ll", Ignore: "ignore"}[ip.Method]
		s := f.name + "=" + m
		for _, a := range ip.Addresses {
			s += " " + a.String()
		}
		if ip.Gateway.IsValid() {
			s += " gw " + ip.Gateway.String()
		}
		for _, d := range ip.DNS {
			s += " dns " + d.String()
		}
		for _, d := range ip.Search {
			s += " search " + d
		}
		for _, r := range ip.Routes {
			s += " route " + r.To.String()
			if r.Via.IsValid() {
				s += " via " + r.Via.String()
			}
			if r.Metric != 0 {
				s += fmt.Sprintf(" metric %d", r.Metric)
			}
		}
		if ip.IgnoreAutoDNS {
			s += " no-auto-dns"
		}
		if ip.Metric != 0 {
			s += fmt.Sprintf(" route-metric %d", ip.Metric)
		}
		add("%s;", s)
	}
	for _, k := range sortedKeys(p.Extra) {
		add("%s=%s", k, p.Extra[k])
	}
	return strings.Join(b, " ")
}

// expectProfiles compares what a reader found with the expected lines.
func expectProfiles(t *testing.T, what string, got []*Profile, want ...string) {
	t.Helper()
	var g []string
	for _, p := range got {
		g = append(g, describe(p))
	}
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: got\n  %s\nwant\n  %s", what, strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}

// expectRefused checks that each refusal holds one of the words, in order.
func expectRefused(t *testing.T, what string, got []Refusal, want ...string) {
	t.Helper()
	var g []string
	for _, r := range got {
		g = append(g, r.String())
	}
	ok := len(g) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.Contains(g[i], want[i])
	}
	if !ok {
		t.Errorf("%s: refused\n  %s\nwant refusals with\n  %s", what, strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}
