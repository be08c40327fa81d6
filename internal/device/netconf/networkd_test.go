package netconf

import "testing"

// enableNetworkd enables systemd-networkd in the root, as
// `systemctl enable systemd-networkd` does.
func (r *root) enableNetworkd() {
	r.link("/etc/systemd/system/multi-user.target.wants/systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service")
}

func TestNetworkd(t *testing.T) {
	r := newRoot(t)
	r.enableNetworkd()
	n := "/etc/systemd/network/"
	r.write(n+"10-eth0.network", "[Match]\nName=eth0\n\n[Link]\nMTUBytes=9000\n\n[Network]\nAddress=192.168.50.5/24\nAddress=2001:db8:50::5/64\n"+
		"Gateway=192.168.50.1\nDNS=192.168.50.53\nDomains=lab.example\nVLAN=vlan60\n\n[Route]\nDestination=10.50.0.0/16\nGateway=192.168.50.254\nMetric=30\n")
	r.write(n+"20-vlan60.netdev", "[NetDev]\nName=vlan60\nKind=vlan\n\n[VLAN]\nId=60\n")
	r.write(n+"20-vlan60.network", "[Match]\nName=vlan60\n\n[Network]\nDHCP=yes\n")
	r.write(n+"30-bond0.netdev", "[NetDev]\nName=bond0\nKind=bond\n\n[Bond]\nMode=802.3ad\nMIIMonitorSec=100ms\nTransmitHashPolicy=layer3+4\n")
	r.write(n+"30-bond0.network", "[Match]\nName=bond0\n\n[Network]\nAddress=10.60.0.5/24\nGateway=10.60.0.1\n")
	r.write(n+"31-bond-ports.network", "[Match]\nName=eth1 eth2\n\n[Network]\nBond=bond0\n")
	r.write(n+"40-wlan0.network", "[Match]\nName=wlan0\n\n[Network]\nAddress=192.168.70.5/24\nGateway=192.168.70.1\n")
	r.write(n+"80-dhcp.network", "[Match]\nName=en*\n\n[Network]\nDHCP=yes\n")
	// A drop-in adds to its file.
	r.write(n+"80-dhcp.network.d/dns.conf", "[DHCPv4]\nUseDNS=no\n")
	r.write(n+"90-old.network", "") // masked (empty)
	r.write("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf", "network={\n\tssid=\"shop\"\n\tpsk=\"shop-pass-1\"\n}\n")
	s := Read(r.fs())
	expectRefused(t, "networkd", s.Refused)
	expectProfiles(t, "networkd", s.Profiles,
		`ethernet "10-eth0" if=eth0 mtu=9000 v4=manual 192.168.50.5/24 gw 192.168.50.1 dns 192.168.50.53 search lab.example route 10.50.0.0/16 via 192.168.50.254 metric 30; v6=auto 2001:db8:50::5/64; connection.autoconnect-priority=4`,
		`vlan "20-vlan60" if=vlan60 vlan=60 parent=eth0 v4=auto; v6=auto; connection.autoconnect-priority=3`,
		`bond "30-bond0" if=bond0 bond=miimon=100,mode=802.3ad,xmit_hash_policy=layer3+4 v4=manual 10.60.0.5/24 gw 10.60.0.1; v6=auto; connection.autoconnect-priority=2`,
		`ethernet "bond0 port 31-bond-ports" match=eth1,eth2 port-of=bond0`,
		`ethernet "80-dhcp" match=en* v4=auto no-auto-dns; v6=auto; connection.autoconnect-priority=1`,
		`wifi "shop" if=wlan0 ssid="shop" psk="shop-pass-1" v4=manual 192.168.70.5/24 gw 192.168.70.1; v6=auto;`,
	)
	readBack(t, s.Profiles)

	// Not enabled, the same files are leftovers: nothing is read.
	r.remove("/etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
	s = Read(r.fs())
	for _, p := range s.Profiles {
		if p.Kind != Wifi {
			t.Errorf("read from a disabled systemd-networkd: %s", describe(p))
		}
	}
}

func TestNetworkdRefuses(t *testing.T) {
	r := newRoot(t)
	r.enableNetworkd()
	n := "/etc/systemd/network/"
	r.write(n+"50-br.netdev", "[NetDev]\nName=br0\nKind=bridge\n")
	r.write(n+"50-br.network", "[Match]\nName=br0\n\n[Network]\nDHCP=yes\n")
	r.write(n+"60-drv.network", "[Match]\nDriver=e1000e\n\n[Network]\nDHCP=yes\n")
	r.write(n+"70-fwd.network", "[Match]\nName=eth5\n\n[Network]\nAddress=10.5.0.1/24\nIPForward=yes\n")
	r.write(n+"71-neg.network", "[Match]\nName=!eth6\n\n[Network]\nDHCP=yes\n")
	r.write(n+"72-table.network", "[Match]\nName=eth7\n\n[Network]\nDHCP=yes\n\n[Route]\nDestination=10.0.0.0/8\nTable=100\n")
	s := Read(r.fs())
	expectRefused(t, "networkd", s.Refused,
		"50-br.network: br0 is a bridge device",
		"60-drv.network: [Match] Driver= is not carried",
		"70-fwd.network: [Network] IPForward= is not carried",
		"71-neg.network: Name=!eth6: a negative match",
		"72-table.network: [Route] Table= is not carried",
	)
}
