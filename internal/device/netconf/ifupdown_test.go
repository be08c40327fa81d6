package netconf

import (
	"strings"
	"testing"
)

// ifquery has ifupdown itself read an interfaces file: the test's setup
// is one ifupdown takes.
func (r *root) ifquery(file string, want ...string) {
	r.t.Helper()
	out, err := r.chroot("ifquery", "--interfaces", r.in+file, "--list", "--allow", "auto")
	if err != nil {
		r.t.Fatalf("ifquery refuses %s: %v\n%s", file, err, out)
	}
	if got := strings.Fields(out); strings.Join(got, " ") != strings.Join(want, " ") {
		r.t.Errorf("ifquery lists %v in %s, want %v", got, file, want)
	}
}

func TestIfupdownWired(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/network/interfaces", `# as Debian's installer writes it, plus a static port
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet static
	address 192.168.10.5
	netmask 255.255.255.0
	gateway 192.168.10.1
	dns-nameservers 192.168.10.53 2001:db8::53
	dns-search lan example.com
	mtu 1400
	up ip route add 10.20.0.0/16 via 192.168.10.254 metric 50
	down ip route del 10.20.0.0/16 via 192.168.10.254
	post-up route add -net 172.16.0.0 netmask 255.240.0.0 gw 192.168.10.253
iface eth0 inet6 static
	address 2001:db8::5/64
	gateway 2001:db8::1
`)
	r.write("/etc/network/interfaces.d/eth1", "allow-hotplug eth1\niface eth1 inet dhcp\n")
	r.write("/etc/network/interfaces.d/eth2", "auto eth2\niface eth2 inet dhcp\n\tmetric 300\n\thwaddress ether 02:11:22:33:44:55\n\thostname gw-0042\niface eth2 inet6 auto\n")
	r.write("/etc/network/interfaces.d/eth3", "iface eth3 inet static\n\taddress 10.3.0.5/16\n\tup ip addr add 10.4.0.5/16 dev eth3\n")
	r.ifquery("/etc/network/interfaces", "lo")
	s := Read(r.fs())
	expectRefused(t, "ifupdown", s.Refused)
	expectProfiles(t, "ifupdown", s.Profiles,
		`ethernet "eth1" if=eth1 v4=auto; v6=auto;`,
		`ethernet "eth2" if=eth2 cloned=02:11:22:33:44:55 v4=auto route-metric 300; v6=auto; ipv4.dhcp-hostname=gw-0042`,
		`ethernet "eth3" if=eth3 noauto v4=manual 10.3.0.5/16 10.4.0.5/16; v6=auto;`,
		`ethernet "eth0" if=eth0 mtu=1400 v4=manual 192.168.10.5/24 gw 192.168.10.1 dns 192.168.10.53 search lan search example.com route 10.20.0.0/16 via 192.168.10.254 metric 50 route 172.16.0.0/12 via 192.168.10.253; v6=manual 2001:db8::5/64 gw 2001:db8::1 dns 2001:db8::53;`,
	)
	if !s.Profiles[0].PlainDHCP() || s.Profiles[1].PlainDHCP() {
		t.Error("only eth1 is plain DHCP")
	}
	readBack(t, s.Profiles)
}

func TestIfupdownWifi(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/network/interfaces", `source /etc/network/interfaces.d/*
allow-hotplug wlan0
iface wlan0 inet dhcp
	wpa-ssid "Café ☕ net"
	wpa-psk "pässwörd-日本語"

auto wlan1
iface wlan1 inet static
	address 192.168.20.7/24
	gateway 192.168.20.1
	wpa-conf /etc/wpa_supplicant/site.conf

auto wlan2
iface wlan2 inet dhcp
	wpa-ssid hexkey
	wpa-psk 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`)
	r.write("/etc/wpa_supplicant/site.conf", "network={\n\tssid=\"site-a\"\n\tpsk=\"site-a-pass\"\n}\nnetwork={\n\tssid=\"site-b\"\n\tkey_mgmt=SAE\n\tsae_password=\"wpa3 pass\"\n}\n")
	r.ifquery("/etc/network/interfaces", "lo", "wlan1", "wlan2") // lo is implied
	s := Read(r.fs())
	expectRefused(t, "ifupdown", s.Refused)
	var wifis []*Profile
	for _, p := range s.Profiles {
		if p.Kind == Wifi && strings.HasPrefix(p.Source, "/etc/network") || strings.HasPrefix(p.Source, "/etc/wpa_supplicant/site.conf") {
			wifis = append(wifis, p)
		}
	}
	expectProfiles(t, "ifupdown", wifis,
		`wifi "Café ☕ net" if=wlan0 ssid="Café ☕ net" psk="pässwörd-日本語" v4=auto; v6=auto;`,
		`wifi "site-a" if=wlan1 ssid="site-a" psk="site-a-pass" v4=manual 192.168.20.7/24 gw 192.168.20.1; v6=auto;`,
		`wifi "site-b" if=wlan1 ssid="site-b" sae="wpa3 pass" v4=manual 192.168.20.7/24 gw 192.168.20.1; v6=auto;`,
		`wifi "hexkey" if=wlan2 ssid="hexkey" psk="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" v4=auto; v6=auto;`,
	)
	readBack(t, wifis)
}

func TestIfupdownBondAndVLAN(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/network/interfaces", `auto bond0
iface bond0 inet static
	address 10.1.0.5/24
	gateway 10.1.0.1
	bond-slaves eth0 eth1
	bond-mode 4
	bond-miimon 100
	bond-lacp-rate fast
	bond-xmit-hash-policy layer3+4

auto eth3.100
iface eth3.100 inet static
	address 10.100.0.5/24

auto vlan200
iface vlan200 inet dhcp
	vlan-raw-device eth3
`)
	r.ifquery("/etc/network/interfaces", "lo", "bond0", "eth3.100", "vlan200")
	s := Read(r.fs())
	expectRefused(t, "ifupdown", s.Refused)
	expectProfiles(t, "ifupdown", s.Profiles,
		`bond "bond0" if=bond0 bond=lacp_rate=fast,miimon=100,mode=802.3ad,xmit_hash_policy=layer3+4 v4=manual 10.1.0.5/24 gw 10.1.0.1; v6=auto;`,
		`vlan "eth3.100" if=eth3.100 vlan=100 parent=eth3 v4=manual 10.100.0.5/24; v6=auto;`,
		`vlan "vlan200" if=vlan200 vlan=200 parent=eth3 v4=auto; v6=auto;`,
		`ethernet "bond0 port eth0" if=eth0 port-of=bond0`,
		`ethernet "bond0 port eth1" if=eth1 port-of=bond0`,
	)
	readBack(t, s.Profiles)
}

// What ifupdown can do and NetworkManager cannot be told is refused,
// each with the stanza it is in; the rest of the file is still read.
func TestIfupdownRefuses(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/network/interfaces", `auto br0
iface br0 inet dhcp
	bridge_ports eth0
mapping eth1
	script /usr/local/bin/pick
	map home eth1-home
auto eth2
iface eth2 inet static
	address 10.2.0.5/24
	post-up /usr/local/sbin/firewall start
auto ppp0
iface ppp0 inet ppp
	provider isp
auto wlan0
iface wlan0 inet manual
	wpa-roam /etc/wpa_supplicant/roam.conf
auto eth4
iface eth4 inet static
	address 10.4.0.5/24
	pointopoint 10.4.0.1
auto eth5
iface eth5 inet static
	address 10.5.0.5
auto eth6
iface eth6 inet dhcp
`)
	s := Read(r.fs())
	expectRefused(t, "ifupdown", s.Refused,
		"interfaces:4: a mapping stanza",
		"interfaces:2: iface br0 is a bridge",
		`interfaces:8: iface eth2: up "/usr/local/sbin/firewall start" runs a command`,
		"interfaces:12: iface ppp0 inet ppp: the ppp method is not carried",
		"interfaces:15: iface wlan0: wpa-roam",
		"interfaces:18: iface eth4: the option pointopoint is not carried",
		"interfaces:22: iface eth5: address 10.5.0.5 has neither a /length nor a netmask",
	)
	for _, want := range []string{"br0", "eth2", "ppp0", "wlan0", "eth4", "eth5"} {
		found := false
		for _, rf := range s.Refused {
			found = found || rf.Key == want
		}
		if !found {
			t.Errorf("no refusal names %s for NETWORK_SKIP", want)
		}
	}
	expectProfiles(t, "ifupdown", s.Profiles, `ethernet "eth6" if=eth6 v4=auto; v6=auto;`)
}
