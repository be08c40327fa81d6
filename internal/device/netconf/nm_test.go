package netconf

import (
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv/nmread"
)

// NetworkManager's connections go over as their own files, of every type
// balenaOS's NetworkManager runs; /run overrides /etc for one UUID.
func TestNetworkManagerConnections(t *testing.T) {
	r := newRoot(t)
	sc := "/etc/NetworkManager/system-connections/"
	files := map[string]string{
		sc + "Wired connection 1.nmconnection": "[connection]\nid=Wired connection 1\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000001\ntype=ethernet\ninterface-name=enp1s0\n\n" +
			"[ethernet]\n\n[ipv4]\naddress1=192.168.80.5/24,192.168.80.1\ndns=192.168.80.1;\nmethod=manual\n\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n\n[proxy]\n",
		sc + "vlan80.nmconnection":      "[connection]\nid=vlan80\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000002\ntype=vlan\n\n[vlan]\nid=80\nparent=enp1s0\n\n[ipv4]\nmethod=auto\n",
		sc + "bond0.nmconnection":       "[connection]\nid=bond0\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000003\ntype=bond\ninterface-name=bond0\n\n[bond]\nmode=active-backup\nmiimon=100\n\n[ipv4]\nmethod=auto\n",
		sc + "bond0-port1.nmconnection": "[connection]\nid=bond0-port1\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000004\ntype=ethernet\ninterface-name=enp2s0\nmaster=bond0\nslave-type=bond\n",
		sc + "home ☕.nmconnection": "[connection]\nid=home ☕\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000005\ntype=wifi\n\n[wifi]\nmode=infrastructure\nssid=home ☕\n\n" +
			"[wifi-security]\nkey-mgmt=wpa-psk\npsk=pässwörd-日本語\n\n[ipv4]\nmethod=auto\n",
		sc + "corp-ok.nmconnection": "[connection]\nid=corp-ok\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000006\ntype=wifi\n\n[wifi]\nssid=corp\n\n[wifi-security]\nkey-mgmt=wpa-eap\n\n" +
			"[802-1x]\neap=peap;\nidentity=dev\npassword=s3cret\nphase2-auth=mschapv2\nca-cert=/etc/ssl/certs/ca-certificates.crt\n\n[ipv4]\nmethod=auto\n",
		sc + "lo.nmconnection":       "[connection]\nid=lo\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000007\ntype=loopback\ninterface-name=lo\n",
		sc + "old.nmconnection~":     "[connection]\nid=backup\ntype=vpn\n",
		sc + "shadowed.nmconnection": "[connection]\nid=from etc\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000008\ntype=ethernet\ninterface-name=enp3s0\n\n[ipv4]\nmethod=auto\n",
		"/run/NetworkManager/system-connections/shadowed.nmconnection":     "[connection]\nid=from run\nuuid=1c4b1a0e-1111-4c4b-9a1e-000000000008\ntype=ethernet\ninterface-name=enp3s0\n\n[ipv4]\naddress1=10.3.0.5/24\nmethod=manual\n",
		"/run/NetworkManager/system-connections/netplan-eth0.nmconnection": "[connection]\nid=netplan-eth0\ntype=ethernet\n",
	}
	for name, data := range files {
		r.write(name, data)
	}
	s := Read(r.fs())
	expectRefused(t, "NetworkManager", s.Refused)
	var got []string
	for _, p := range s.Profiles {
		if !strings.Contains(p.Source, "NetworkManager") {
			continue
		}
		got = append(got, string(p.Kind)+" "+p.ID+" ("+p.Source+")")
		if string(p.Keyfile) != files[p.Source] {
			t.Errorf("%s is not carried as it is", p.Source)
		}
	}
	want := []string{
		"ethernet from run (/run/NetworkManager/system-connections/shadowed.nmconnection)",
		"ethernet Wired connection 1 (/etc/NetworkManager/system-connections/Wired connection 1.nmconnection)",
		"ethernet bond0-port1 (/etc/NetworkManager/system-connections/bond0-port1.nmconnection)",
		"bond bond0 (/etc/NetworkManager/system-connections/bond0.nmconnection)",
		"wifi corp-ok (/etc/NetworkManager/system-connections/corp-ok.nmconnection)",
		"wifi home ☕ (/etc/NetworkManager/system-connections/home ☕.nmconnection)",
		"vlan vlan80 (/etc/NetworkManager/system-connections/vlan80.nmconnection)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("carried:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// Each file NetworkManager reads as a valid connection, and the model
	// knows what each one covers.
	var kfs [][]byte
	for _, p := range s.Profiles {
		kfs = append(kfs, p.Keyfile)
	}
	for i, c := range nmread.ReadData(t, kfs...) {
		if c.Error != "" {
			t.Errorf("%s: %s", s.Profiles[i].Source, c.Error)
		}
	}
	covers := map[string]bool{}
	for _, p := range s.Profiles {
		for _, l := range []string{"enp1s0", "enp2s0", "enp3s0", "bond0", "enp1s0.80", "wlan0"} {
			if p.Carries(l, "", l == "wlan0") {
				covers[l] = true
			}
		}
	}
	if len(covers) != 5 || covers["enp2s0"] {
		t.Errorf("links covered: %v (a bond port is covered by its bond, not by itself)", covers)
	}
}

// A connection whose secret is not in its file, one of a type that needs a
// plugin balenaOS lacks, or one that needs local certificate files is
// refused, naming the UUID NETWORK_SKIP takes.
func TestNetworkManagerRefuses(t *testing.T) {
	r := newRoot(t)
	sc := "/etc/NetworkManager/system-connections/"
	r.write(sc+"a-agent.nmconnection", "[connection]\nid=agent\nuuid=2c4b1a0e-1111-4c4b-9a1e-000000000001\ntype=wifi\n\n[wifi]\nssid=desk\n\n"+
		"[wifi-security]\nkey-mgmt=wpa-psk\npsk-flags=1\n")
	r.write(sc+"b-vpn.nmconnection", "[connection]\nid=office vpn\nuuid=2c4b1a0e-1111-4c4b-9a1e-000000000002\ntype=vpn\n\n[vpn]\nservice-type=org.freedesktop.NetworkManager.openvpn\n")
	r.write(sc+"c-corp.nmconnection", "[connection]\nid=corp\nuuid=2c4b1a0e-1111-4c4b-9a1e-000000000003\ntype=ethernet\n\n[802-1x]\neap=tls;\nidentity=dev\n"+
		"client-cert=/etc/ssl/private/dev.pem\nprivate-key=/etc/ssl/private/dev.key\nprivate-key-password=x\n")
	r.write(sc+"d-unsaved.nmconnection", "[connection]\nid=unsaved\nuuid=2c4b1a0e-1111-4c4b-9a1e-000000000004\ntype=ethernet\n\n[802-1x]\neap=peap;\nidentity=dev\npassword-flags=2\n")
	s := Read(r.fs())
	expectRefused(t, "NetworkManager", s.Refused,
		`connection "agent" has its secret wifi-security.psk kept by the user's secret agent`,
		`connection "office vpn" is of type vpn`,
		`connection "corp" refers to client-cert /etc/ssl/private/dev.pem, private-key /etc/ssl/private/dev.key`,
		`connection "unsaved" has its secret 802-1x.password never saved`,
	)
	for i, rf := range s.Refused {
		if !strings.HasPrefix(rf.Key, "2c4b1a0e-") || !strings.HasSuffix(rf.Key, string(rune('1'+i))) {
			t.Errorf("refusal %d names %q for NETWORK_SKIP", i, rf.Key)
		}
	}
}
