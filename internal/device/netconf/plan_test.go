package netconf

import (
	"net/netip"
	"strings"
	"testing"
)

// link is a live link for plan tests.
func link(name, mac string, wireless, physical bool, addrs ...string) Link {
	k := Link{Name: name, MAC: mac, PermanentMAC: mac != "", Wireless: wireless, Physical: physical, Ethernet: true}
	for _, a := range addrs {
		dyn := strings.HasSuffix(a, " dynamic")
		k.Addrs = append(k.Addrs, LinkAddr{Prefix: netip.MustParsePrefix(strings.TrimSuffix(a, " dynamic")), Dynamic: dyn})
	}
	return k
}

func TestPlanWiredAndContract(t *testing.T) {
	eth0 := &Profile{ID: "eth0", Kind: Ethernet, Source: "/etc/network/interfaces:3", Interface: "eth0",
		IPv4: IP{Method: Manual, Addresses: []netip.Prefix{pfx("192.168.1.5/24")}, Gateway: addr("192.168.1.1")}}
	eth1 := &Profile{ID: "eth1", Kind: Ethernet, Source: "/etc/network/interfaces.d/eth1:2", Interface: "eth1"}
	home := &Profile{ID: "home", Kind: Wifi, Source: "/etc/wpa_supplicant/wpa_supplicant.conf", SSID: "home", PSK: "home-pass-1"}
	corp := &Profile{ID: "corp", Kind: Wifi, Source: "/etc/wpa_supplicant/wpa_supplicant.conf", SSID: "corp", Security: Unsupported, Why: "enterprise (802.1X/EAP) authentication"}
	setup := func() Setup {
		e0, e1, h, c := *eth0, *eth1, *home, *corp
		return Setup{Profiles: []*Profile{&e0, &e1, &h, &c}}
	}
	live := Live{Links: []Link{
		link("eth0", "52:54:00:00:00:01", false, true, "192.168.1.5/24"),
		link("eth1", "52:54:00:00:00:02", false, true, "10.1.0.9/24 dynamic"),
		link("wlan0", "52:54:00:00:00:03", true, true, "192.168.2.7/24 dynamic"),
	}, Default: []string{"eth0"}, Session: "eth1"}

	pl := MakePlan(setup(), live, Options{})
	expectProfiles(t, "written", pl.Write, `ethernet "eth0" if=eth0 mac=52:54:00:00:00:01 v4=manual 192.168.1.5/24 gw 192.168.1.1; v6=auto;`)
	expectRefused(t, "refused", pl.Refused)
	expectRefused(t, "unreachable", pl.Unreachable)
	if len(pl.Covered) != 2 || !strings.Contains(pl.Covered[0], "eth0 (the default route) comes up on balenaOS: ethernet eth0 from /etc/network/interfaces:3") ||
		!strings.Contains(pl.Covered[1], "eth1 (the SSH session) comes up on balenaOS: DHCP on an ethernet port, as /etc/network/interfaces.d/eth1:2 says") {
		t.Errorf("covered: %q", pl.Covered)
	}
	if !strings.Contains(strings.Join(pl.Infos, "\n"), `Wi-Fi "home" from /etc/wpa_supplicant/wpa_supplicant.conf is not carried: the device is not reached over Wi-Fi`) {
		t.Errorf("infos: %q", pl.Infos)
	}

	// Reached over Wi-Fi: the networks are carried by default, and one
	// that cannot be is refused.
	wl := live
	wl.Default, wl.Session = []string{"wlan0"}, "wlan0"
	pl = MakePlan(setup(), wl, Options{})
	expectProfiles(t, "written", pl.Write[1:], `wifi "home" ssid="home" psk="home-pass-1" v4=auto; v6=auto;`)
	expectRefused(t, "refused", pl.Refused, `Wi-Fi "corp": it uses enterprise`)
	expectRefused(t, "unreachable", pl.Unreachable)
	// MIGRATE_WIFI_CFG leaves the enterprise network out.
	pl = MakePlan(setup(), wl, Options{WifiFilter: map[string]bool{"home": true}})
	expectRefused(t, "refused", pl.Refused)
	// ... and one that leaves every network out leaves the link uncovered.
	pl = MakePlan(setup(), wl, Options{WifiFilter: map[string]bool{"elsewhere": true}})
	expectRefused(t, "unreachable", pl.Unreachable, "wlan0 carries the default route and the SSH session but no Wi-Fi network is carried for it")

	// A link with a static address nothing explains, and a virtual link.
	odd := Live{Links: []Link{link("eth7", "52:54:00:00:00:07", false, true, "10.7.0.5/24"), link("tun0", "", false, false, "10.8.0.2/24")},
		Default: []string{"tun0"}, Session: "eth7"}
	pl = MakePlan(setup(), odd, Options{})
	expectRefused(t, "unreachable", pl.Unreachable,
		"tun0 carries the default route but no carried setup makes it (a virtual link)",
		"eth7 carries the SSH session but its address 10.7.0.5/24 is set by nothing balena-migrate reads")
	// A NetworkManager connection bound to no device covers any wired port.
	anyPort := &Profile{ID: "Wired", Kind: Ethernet, Source: "/etc/NetworkManager/system-connections/Wired.nmconnection", Keyfile: []byte("[connection]\nid=Wired\ntype=ethernet\n")}
	pl = MakePlan(Setup{Profiles: []*Profile{anyPort}}, Live{Links: []Link{link("end0", "d8:3a:dd:00:00:01", false, true, "10.5.0.9/24")}, Default: []string{"end0"}}, Options{})
	expectRefused(t, "unreachable", pl.Unreachable)
	// A port with a leased address and no setup is DHCP ethernet.
	leasedPort := Live{Links: []Link{link("enp3s0", "52:54:00:00:00:08", false, true, "10.9.0.5/24 dynamic", "fe80::1/64")}, Default: []string{"enp3s0"}}
	pl = MakePlan(setup(), leasedPort, Options{})
	expectRefused(t, "unreachable", pl.Unreachable)
}

func TestPlanSkipGivenConflicts(t *testing.T) {
	s := Setup{
		Profiles: []*Profile{
			{ID: "eth2", Kind: Ethernet, Source: "/etc/network/interfaces:7", Interface: "eth2", IPv4: IP{Method: Manual, Addresses: []netip.Prefix{pfx("10.2.0.5/24")}}},
			{ID: "10-eth2", Kind: Ethernet, Source: "/etc/systemd/network/10-eth2.network", Interface: "eth2", IPv4: IP{Method: Manual, Addresses: []netip.Prefix{pfx("10.2.0.6/24")}}},
			{ID: "eth3", Kind: Ethernet, Source: "/etc/network/interfaces:12", Interface: "eth3", IPv4: IP{Method: Manual, Addresses: []netip.Prefix{pfx("10.3.0.5/24")}}},
		},
		Refused: []Refusal{
			{Source: "/etc/network/interfaces:20", Why: "iface br0 is a bridge", Key: "br0"},
			{Source: "/etc/network/interfaces:30", Why: "iface eth4: up ... runs a command", Key: "eth4"},
			{Source: "/etc/NetworkManager/system-connections/vpn", Why: "type vpn", Key: "0b1c"},
		},
	}
	given := &Profile{ID: "eth4 by hand", Kind: Ethernet, Source: "/home/pi/migrate/eth4.nmconnection", Interface: "eth4", Keyfile: []byte("x")}
	pl := MakePlan(s, Live{}, Options{Skip: []string{"br0", "0b1c", "eth3"}, Given: []*Profile{given}})
	expectRefused(t, "refused", pl.Refused, "10-eth2.network: eth2 is also set up by /etc/network/interfaces:7")
	warn := strings.Join(pl.Warnings, "\n")
	for _, w := range []string{"left behind (NETWORK_SKIP br0): /etc/network/interfaces:20: iface br0 is a bridge",
		"left behind (NETWORK_SKIP 0b1c)", "replaced by /home/pi/migrate/eth4.nmconnection from COPY_NMGR_FILES",
		"left behind (NETWORK_SKIP): ethernet eth3 from /etc/network/interfaces:12"} {
		if !strings.Contains(warn, w) {
			t.Errorf("no warning %q in\n%s", w, warn)
		}
	}
}
