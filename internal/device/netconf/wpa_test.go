package netconf

import (
	"errors"
	"testing"
)

func TestParseWPASupplicant(t *testing.T) {
	conf := `ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
update_config=1
network={
	ssid="office net"
	psk="pa#ss \"word"
	key_mgmt=WPA-PSK
}
network={
	ssid=6361666520776966 # hex
	psk=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
}
network={
	ssid="open"
	key_mgmt=NONE
}
network={
	psk="no ssid"
}
network={
	ssid="corp"
	key_mgmt=WPA-EAP
	eap=PEAP
	identity="alice"
	password="secret"
}
network={
	ssid="old"
	key_mgmt=NONE
	wep_key0="abcde"
}
network={
	ssid="wpa3"
	key_mgmt=SAE
	sae_password="longpassword"
}
network={
	ssid="default eap"
	identity="bob"
}
network={
	ssid=P"esc\x41ped"
	psk="pässwörd ☕"
	disabled=1
}
network={
	ssid="hotspot"
	mode=2
	psk="apmode-pass"
}
network={
	ssid="locked"
	psk="locked-pass"
	bssid=00:11:22:33:44:55
}
`
	expectProfiles(t, "wpa_supplicant", ParseWPASupplicant(conf, "w"),
		`wifi "office net" ssid="office net" psk="pa#ss \\\"word" v4=auto; v6=auto;`,
		`wifi "cafe wif" ssid="cafe wif" psk="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" v4=auto; v6=auto;`,
		`wifi "open" ssid="open" open v4=auto; v6=auto;`,
		`wifi "corp" ssid="corp" unsupported(enterprise (802.1X/EAP) authentication) v4=auto; v6=auto;`,
		`wifi "old" ssid="old" unsupported(WEP) v4=auto; v6=auto;`,
		`wifi "wpa3" ssid="wpa3" sae="longpassword" v4=auto; v6=auto;`,
		`wifi "default eap" ssid="default eap" unsupported(enterprise (802.1X/EAP) authentication) v4=auto; v6=auto;`,
		`wifi "escAped" noauto ssid="escAped" psk="pässwörd ☕" v4=auto; v6=auto;`,
		`wifi "hotspot" ssid="hotspot" unsupported(access point mode) v4=auto; v6=auto;`,
		`wifi "locked" ssid="locked" unsupported(the option bssid) v4=auto; v6=auto;`,
	)
}

func TestParseConnman(t *testing.T) {
	got := ParseConnman("[global]\nName=x\n[service_wifi_1_managed_psk]\nType=wifi\nSSID=6c6162\nPassphrase=p1-longer\n[service_ethernet_2]\nName=eth\n"+
		"[service_wifi_3_managed_psk]\nName=named\nPassphrase=p3-longer\nIPv4.method=manual\nIPv4.netmask_prefixlen=24\nIPv4.local_address=192.168.7.20\nIPv4.gateway=192.168.7.1\nNameservers=192.168.7.1;9.9.9.9;\n"+
		"[service_wifi_4_managed_ieee8021x]\nName=corp\n[service_wifi_5_managed_none]\nName=cafe\nIPv4.method=dhcp\n", "c")
	expectProfiles(t, "connman", got,
		`wifi "lab" ssid="lab" psk="p1-longer" v4=auto; v6=auto;`,
		`wifi "named" ssid="named" psk="p3-longer" v4=manual 192.168.7.20/24 gw 192.168.7.1 dns 192.168.7.1 dns 9.9.9.9; v6=auto;`,
		`wifi "corp" ssid="corp" unsupported(enterprise (802.1X/EAP) authentication) v4=auto; v6=auto;`,
		`wifi "cafe" ssid="cafe" open v4=auto; v6=auto;`,
	)
	readBack(t, []*Profile{got[0], got[1], got[3]})
}

// An enterprise or WEP network from wpa_supplicant or connman is never
// written as an open one.
func TestEnterpriseNeverOpen(t *testing.T) {
	for _, p := range append(ParseWPASupplicant("network={\n\tssid=\"corp\"\n\tkey_mgmt=WPA-EAP\n\teap=TTLS\n\tidentity=\"a\"\n}\nnetwork={\n\tssid=\"wep\"\n\tkey_mgmt=NONE\n\twep_key0=1234567890\n}\n", "w"),
		ParseConnman("[service_wifi_1_managed_ieee8021x]\nName=corp2\n", "c")...) {
		if kf, err := Keyfile(p); !errors.Is(err, ErrCannotCarry) || kf != nil {
			t.Errorf("%q: got a keyfile (%v):\n%s", p.SSID, err, kf)
		}
	}
}
