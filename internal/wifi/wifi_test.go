package wifi

import (
	"reflect"
	"strings"
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
`
	got := ParseWPASupplicant(conf, "w")
	want := []Network{
		{SSID: "office net", PSK: `pa#ss \"word`, Source: "w"},
		{SSID: "cafe wif", PSK: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Source: "w"},
		{SSID: "open", Source: "w"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseNMKeyfile(t *testing.T) {
	n, ok := ParseNMKeyfile("[connection]\nid=x\ntype=wifi\n[wifi]\nssid=104;105;59;\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=secret\n", "f")
	if !ok || n.SSID != "hi;" || n.PSK != "secret" {
		t.Fatalf("got %+v %v", n, ok)
	}
	if _, ok := ParseNMKeyfile("[connection]\nid=eth\ntype=ethernet\n", "f"); ok {
		t.Fatal("an ethernet connection is not a wifi")
	}
}

func TestParseConnman(t *testing.T) {
	got := ParseConnman("[global]\nName=x\n[service_wifi_1_managed_psk]\nType=wifi\nSSID=6c6162\nPassphrase=p1\n[service_ethernet_2]\nName=eth\n[service_wifi_3_managed_psk]\nName=named\nPassphrase=p3\n", "c")
	want := []Network{{SSID: "lab", PSK: "p1", Source: "c"}, {SSID: "named", PSK: "p3", Source: "c"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestKeyfileRoundTrip(t *testing.T) {
	for _, n := range []Network{{SSID: "plain", PSK: "secret123"}, {SSID: "semi;colon", PSK: "x"}, {SSID: " padded "}} {
		kf := string(Keyfile("resin-wifi-01", n))
		back, ok := ParseNMKeyfile(kf, "")
		if !ok || back.SSID != n.SSID || back.PSK != n.PSK {
			t.Errorf("%+v came back as %+v\n%s", n, back, kf)
		}
		if n.PSK == "" && strings.Contains(kf, "[wifi-security]") {
			t.Errorf("open network with security section:\n%s", kf)
		}
	}
}

func TestDedupeAndNames(t *testing.T) {
	got := Dedupe([]Network{{SSID: "a", PSK: "1"}, {SSID: "b"}, {SSID: "a", PSK: "2"}})
	if len(got) != 2 || got[0].PSK != "1" {
		t.Fatalf("got %+v", got)
	}
	if FileName(2) != "resin-wifi-02" {
		t.Fatal(FileName(2))
	}
}
