package netconf

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv/nmread"
)

// sameConnection lists where two connections NetworkManager read differ
// in what reaches the network: kind, addressing, DNS, routes, the Wi-Fi
// network, VLAN and bond settings. Names and UUIDs may differ.
func sameConnection(ours, theirs nmread.Conn) []string {
	var d []string
	check := func(what string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			d = append(d, fmt.Sprintf("%s: ours %v, netplan's %v", what, a, b))
		}
	}
	if ours.Error != "" || theirs.Error != "" {
		return []string{"ours: " + ours.Error + " netplan's: " + theirs.Error}
	}
	check("type", ours.Type, theirs.Type)
	check("autoconnect", ours.Autoconnect, theirs.Autoconnect)
	check("mtu", ours.MTU, theirs.MTU)
	check("cloned mac", strings.ToLower(ours.ClonedMAC), strings.ToLower(theirs.ClonedMAC))
	check("port type", ours.PortType, theirs.PortType)
	check("ssid", ours.SSIDHex, theirs.SSIDHex)
	check("key-mgmt", ours.KeyMgmt, theirs.KeyMgmt)
	check("psk", ours.PSK, theirs.PSK)
	check("vlan id", ours.VLANID, theirs.VLANID)
	check("bond", fmt.Sprint(ours.BondOptions), fmt.Sprint(theirs.BondOptions))
	for _, f := range []struct {
		name string
		a, b *nmread.IP
	}{{"ipv4", ours.IPv4, theirs.IPv4}, {"ipv6", ours.IPv6, theirs.IPv6}} {
		if f.a == nil || f.b == nil {
			check(f.name, f.a == nil, f.b == nil)
			continue
		}
		check(f.name+" method", f.a.Method, f.b.Method)
		check(f.name+" addresses", f.a.Addresses, f.b.Addresses)
		check(f.name+" gateway", f.a.Gateway, f.b.Gateway)
		check(f.name+" dns", f.a.DNS, f.b.DNS)
		check(f.name+" dns-search", f.a.DNSSearch, f.b.DNSSearch)
		check(f.name+" routes", sorted(f.a.Routes), sorted(f.b.Routes))
		check(f.name+" ignore-auto-dns", f.a.IgnoreAutoDNS, f.b.IgnoreAutoDNS)
		check(f.name+" route-metric", f.a.RouteMetric, f.b.RouteMetric)
	}
	return d
}

// compareWithNetplan renders the root's YAML with netplan's own
// NetworkManager renderer and checks that NetworkManager reads each of our
// keyfiles as it reads netplan's for the same connection (found by kind
// and interface or SSID).
func compareWithNetplan(t *testing.T, r *root, ps []*Profile) {
	t.Helper()
	theirFiles := r.netplanGenerate()
	if len(theirFiles) != len(ps) {
		t.Errorf("netplan renders %d connections, we carry %d", len(theirFiles), len(ps))
	}
	theirs := nmread.Read(t, theirFiles...)
	kfs := keyfiles(t, ps)
	ours := nmread.ReadData(t, kfs...)
	for i, o := range ours {
		p := ps[i]
		j := slices.IndexFunc(theirs, func(c nmread.Conn) bool {
			if c.Type != o.Type {
				return false
			}
			if p.Kind == Wifi {
				return c.SSIDHex == o.SSIDHex
			}
			name := strings.TrimPrefix(strings.TrimSuffix(filepath.Base(c.File), ".nmconnection"), "netplan-")
			return c.InterfaceName == p.Interface || name == p.Interface || p.ConnUUID != "" && c.UUID == p.ConnUUID ||
				p.MAC != "" && strings.EqualFold(c.MAC, p.MAC)
		})
		if j < 0 {
			t.Errorf("%s: netplan renders no such connection", p.Label())
			continue
		}
		if d := sameConnection(o, theirs[j]); len(d) > 0 {
			t.Errorf("%s: NetworkManager reads ours and netplan's differently:\n  %s\nours:\n%s", p.Label(), strings.Join(d, "\n  "), kfs[i])
		}
	}
}

func TestNetplanEthernetsAndWifis(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/netplan/50-site.yaml", `network:
  version: 2
  renderer: NetworkManager
  ethernets:
    eth0:
      addresses: [192.168.30.5/24, "2001:db8:30::5/64"]
      routes:
        - to: default
          via: 192.168.30.1
        - to: 10.30.0.0/16
          via: 192.168.30.254
          metric: 40
      nameservers:
        addresses: [192.168.30.53, "2001:db8:30::53"]
        search: [site.example]
      mtu: 1500
    lan:
      match:
        macaddress: "52:54:00:ab:cd:ef"
      set-name: lan0
      dhcp4: true
      dhcp4-overrides:
        use-dns: false
        route-metric: 200
      nameservers:
        addresses: [9.9.9.9]
  wifis:
    wlan0:
      dhcp4: true
      access-points:
        "Café ☕ net":
          password: "pässwörd-日本語"
        "open-net": {}
`)
	// A later file adds to the earlier ones, as netplan merges them.
	r.write("/etc/netplan/60-more.yaml", "network:\n  ethernets:\n    eth0:\n      addresses: [192.168.31.5/24]\n")
	s := Read(r.fs())
	expectRefused(t, "netplan", s.Refused)
	expectProfiles(t, "netplan", s.Profiles,
		`ethernet "eth0" if=eth0 mtu=1500 v4=manual 192.168.30.5/24 192.168.31.5/24 dns 192.168.30.53 search site.example route 0.0.0.0/0 via 192.168.30.1 route 10.30.0.0/16 via 192.168.30.254 metric 40; v6=manual 2001:db8:30::5/64 dns 2001:db8:30::53 search site.example;`,
		`ethernet "lan" if=lan0 mac=52:54:00:ab:cd:ef v4=auto dns 9.9.9.9 route-metric 200; v6=ignore;`,
		`wifi "Café ☕ net" if=wlan0 ssid="Café ☕ net" psk="pässwörd-日本語" v4=auto; v6=ignore;`,
		`wifi "open-net" if=wlan0 ssid="open-net" open v4=auto; v6=ignore;`,
	)
	readBack(t, s.Profiles)
	compareWithNetplan(t, r, s.Profiles)
}

func TestNetplanBondsAndVLANs(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/netplan/01-netcfg.yaml", `network:
  version: 2
  renderer: NetworkManager
  ethernets:
    eth1: {}
    eth2: {}
    eth3:
      dhcp4: true
  bonds:
    bond0:
      interfaces: [eth1, eth2]
      addresses: [10.1.0.5/24]
      routes: [{to: default, via: 10.1.0.1}]
      parameters:
        mode: active-backup
        mii-monitor-interval: 100
        primary: eth1
  vlans:
    vlan100:
      id: 100
      link: eth3
      addresses: [10.100.0.5/24]
`)
	s := Read(r.fs())
	expectRefused(t, "netplan", s.Refused)
	expectProfiles(t, "netplan", s.Profiles,
		`ethernet "bond0 port eth1" if=eth1 port-of=bond0`,
		`ethernet "bond0 port eth2" if=eth2 port-of=bond0`,
		`ethernet "eth3" if=eth3 v4=auto; v6=ignore;`,
		`bond "bond0" if=bond0 bond=miimon=100,mode=active-backup,primary=eth1 v4=manual 10.1.0.5/24 route 0.0.0.0/0 via 10.1.0.1; v6=ignore;`,
		`vlan "vlan100" if=vlan100 vlan=100 parent=eth3 v4=manual 10.100.0.5/24; v6=ignore;`,
	)
	readBack(t, s.Profiles)
	compareWithNetplan(t, r, s.Profiles)
}

// The files NetworkManager writes when netplan keeps its connections
// (Ubuntu 23.10 and later): 90-NM-<uuid>.yaml, with the connection's name,
// UUID and the settings netplan passes through.
func TestNetplanWrittenByNetworkManager(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/netplan/90-NM-9b2c6c2e-3c1e-4d5e-8f7a-0a1b2c3d4e5f.yaml", `network:
  version: 2
  ethernets:
    NM-9b2c6c2e-3c1e-4d5e-8f7a-0a1b2c3d4e5f:
      renderer: NetworkManager
      match:
        name: "enp1s0"
      addresses:
      - "192.168.40.5/24"
      nameservers:
        addresses:
        - 192.168.40.1
      routes:
      - to: "default"
        via: "192.168.40.1"
      networkmanager:
        uuid: "9b2c6c2e-3c1e-4d5e-8f7a-0a1b2c3d4e5f"
        name: "Wired office"
        passthrough:
          connection.timestamp: "1700000000"
          ethernet._: ""
          ipv6.addr-gen-mode: "default"
          ipv6.method: "disabled"
          ipv6.ip6-privacy: "-1"
          proxy._: ""
`)
	r.write("/etc/netplan/90-NM-5d1c4f4a-8e8b-4a57-9a4b-3c2d1e0f9a8b.yaml", `network:
  version: 2
  wifis:
    NM-5d1c4f4a-8e8b-4a57-9a4b-3c2d1e0f9a8b:
      renderer: NetworkManager
      match: {}
      dhcp4: true
      dhcp6: true
      ipv6-address-generation: "stable-privacy"
      access-points:
        "home ☕":
          auth:
            key-management: "psk"
            password: "home-pässword"
          networkmanager:
            uuid: "5d1c4f4a-8e8b-4a57-9a4b-3c2d1e0f9a8b"
            name: "home ☕"
            passthrough:
              ipv6.ip6-privacy: "-1"
              proxy._: ""
      networkmanager:
        uuid: "5d1c4f4a-8e8b-4a57-9a4b-3c2d1e0f9a8b"
        name: "home ☕"
`)
	s := Read(r.fs())
	expectRefused(t, "netplan", s.Refused)
	if len(s.Profiles) != 2 || s.Profiles[0].ID != "Wired office" || s.Profiles[0].UUID() != "9b2c6c2e-3c1e-4d5e-8f7a-0a1b2c3d4e5f" ||
		s.Profiles[1].UUID() != "5d1c4f4a-8e8b-4a57-9a4b-3c2d1e0f9a8b" {
		for _, p := range s.Profiles {
			t.Log(describe(p), p.UUID())
		}
		t.Fatal("the connections do not keep NetworkManager's names and UUIDs")
	}
	compareWithNetplan(t, r, s.Profiles)
}

// What netplan can say and a keyfile of ours cannot is refused.
func TestNetplanRefuses(t *testing.T) {
	r := newRoot(t)
	r.write("/etc/netplan/50-refused.yaml", `network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      routes:
        - to: 10.0.0.0/8
          via: 192.168.1.1
          table: 100
    eth1:
      dhcp4: true
      routing-policy:
        - from: 192.168.2.0/24
          table: 101
    eth2:
      match: {driver: e1000e}
      set-name: lan
      dhcp4: true
    eth3:
      dhcp4: true
  bridges:
    br0:
      interfaces: [eth3]
      dhcp4: true
  tunnels:
    wg0:
      mode: wireguard
  wifis:
    wlan0:
      dhcp4: true
      access-points:
        corp:
          auth:
            key-management: eap
            method: peap
            identity: dev
            password: secret
`)
	s := Read(r.fs())
	expectRefused(t, "netplan", s.Refused,
		"netplan bridges (br0) are not carried",
		"netplan tunnels (wg0) are not carried",
		"eth0: a route with table is not carried",
		"eth1: the netplan key routing-policy is not carried",
		"eth2: set-name lan without match.macaddress",
	)
	// The Wi-Fi network is read as one that cannot be written: it is
	// refused if it is picked.
	var corp *Profile
	for _, p := range s.Profiles {
		if p.SSID == "corp" {
			corp = p
		}
	}
	if corp == nil || corp.Security != Unsupported {
		t.Fatalf("the EAP network: %+v", corp)
	}
	pl := MakePlan(s, Live{}, Options{AllWifis: true})
	expectRefused(t, "plan", pl.Refused[len(pl.Refused)-1:], `Wi-Fi "corp": it uses key-management eap`)
}
