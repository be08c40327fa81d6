package netconf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

// Every kind of profile the model holds is read by NetworkManager as the
// same connection: the writer's table test against libnm.
func TestKeyfilesReadBackByNetworkManager(t *testing.T) {
	static4 := IP{Method: Manual, Addresses: []netip.Prefix{pfx("192.168.10.5/24"), pfx("10.9.0.1/8")}, Gateway: addr("192.168.10.1"),
		DNS: []netip.Addr{addr("192.168.10.53"), addr("1.1.1.1")}, Search: []string{"lan", "example.com"},
		Routes: []Route{{To: pfx("172.16.0.0/12"), Via: addr("192.168.10.254"), Metric: 50}, {To: pfx("10.20.0.0/16")}}, Metric: 20}
	static6 := IP{Method: Manual, Addresses: []netip.Prefix{pfx("2001:db8::5/64")}, Gateway: addr("2001:db8::1"),
		DNS: []netip.Addr{addr("2001:db8::53")}, Routes: []Route{{To: pfx("2001:db8:1::/48"), Via: addr("2001:db8::fe")}}}
	ps := []*Profile{
		{ID: "eth0", Kind: Ethernet, Source: "t", Interface: "eth0", IPv4: static4, IPv6: static6},
		{ID: "by-mac", Kind: Ethernet, Source: "t", Interface: "enp1s0", MAC: "52:54:00:12:34:56", MTU: 9000, ClonedMAC: "02:00:00:00:00:01",
			IPv4: IP{Auto, nil, netip.Addr{}, []netip.Addr{addr("9.9.9.9")}, nil, nil, true, 0}, IPv6: IP{Method: Disabled}},
		{ID: "pattern", Kind: Ethernet, Source: "t", Patterns: []string{"en*", "eth*"}, NoAutoconnect: true, IPv4: IP{Method: LinkLocal}, IPv6: IP{Method: DHCPOnly}},
		{ID: "vlan100", Kind: VLAN, Source: "t", Interface: "eth0.100", VLANID: 100, Parent: "eth0", IPv4: static4, IPv6: IP{Method: LinkLocal}},
		{ID: "vlan7", Kind: VLAN, Source: "t", Interface: "vlan7", VLANID: 7, ParentMAC: "52:54:00:aa:bb:cc", IPv4: IP{}},
		{ID: "bond0", Kind: Bond, Source: "t", Interface: "bond0", BondOptions: map[string]string{"mode": "active-backup", "miimon": "100", "primary": "eth1"}, IPv4: static4},
		{ID: "bond0 port eth1", Kind: Ethernet, Source: "t", Interface: "eth1", Controller: "bond0"},
		{ID: "bond0 port eth2", Kind: Ethernet, Source: "t", Interface: "eth2", MAC: "52:54:00:00:00:02", Controller: "bond0"},
		{ID: "plain", Kind: Wifi, Source: "t", SSID: "plain", PSK: "secret123"},
		{ID: "utf8", Kind: Wifi, Source: "t", SSID: "Café ☕", PSK: "pässwörd-日本語"},
		{ID: "utf8 63 bytes", Kind: Wifi, Source: "t", SSID: "x", PSK: strings.Repeat("é", 31) + "x"},
		{ID: "escapes", Kind: Wifi, Source: "t", SSID: " semi;colon\\ ", PSK: ` \back\slash; "quoted" `},
		{ID: "bytes", Kind: Wifi, Source: "t", SSID: "bytes\x01\xff", PSK: "12345678"},
		{ID: "hex", Kind: Wifi, Source: "t", SSID: "hex", PSK: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"},
		{ID: "wpa3", Kind: Wifi, Source: "t", SSID: "wpa3", PSK: "sae passphrase", Security: SAE},
		{ID: "open", Kind: Wifi, Source: "t", SSID: "open", Security: Open, IPv4: IP{Method: Manual, Addresses: []netip.Prefix{pfx("10.1.2.3/16")}, Gateway: addr("10.1.0.1")}},
		{ID: "extra", Kind: Ethernet, Source: "t", Interface: "eth3", Extra: map[string]string{"ethernet.wake-on-lan": "64"}},
	}
	readBack(t, ps)
}

// What NetworkManager would reject or read as something else is refused.
func TestKeyfileRefuses(t *testing.T) {
	for _, c := range []struct {
		p    Profile
		want string
	}{
		{Profile{ID: "a", Kind: Wifi, SSID: "s", PSK: "short"}, "8 to 63 bytes, this one 5"},
		{Profile{ID: "a", Kind: Wifi, SSID: "s", PSK: strings.Repeat("é", 32)}, "this one 64"},
		{Profile{ID: "a", Kind: Wifi, SSID: "s", PSK: "latin1 \xe9t\xe9 pass"}, "not UTF-8"},
		{Profile{ID: "a", Kind: Wifi, SSID: "s", Security: Unsupported, Why: "WEP"}, "uses WEP"},
		{Profile{ID: "a", Kind: Wifi, SSID: strings.Repeat("s", 33), Security: Open}, "1 to 32 bytes"},
		{Profile{ID: "a", Kind: VLAN, VLANID: 5000, Parent: "eth0"}, "VLAN id 5000"},
		{Profile{ID: "a", Kind: VLAN, VLANID: 5}, "no parent"},
		{Profile{ID: "a", Kind: Bond, BondOptions: map[string]string{"bond_weird": "1"}}, "bonding option bond_weird"},
		{Profile{ID: "a", Kind: Bond, BondOptions: map[string]string{"mode": "fast"}}, `bonding mode "fast"`},
		{Profile{ID: "a", Kind: "bridge"}, `type "bridge"`},
		{Profile{ID: "a", Kind: Ethernet, IPv4: IP{Method: Manual}}, "without an address"},
	} {
		kf, err := Keyfile(&c.p)
		if !errors.Is(err, ErrCannotCarry) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v (%s), want an error with %q", c.p, err, kf, c.want)
		}
	}
}
