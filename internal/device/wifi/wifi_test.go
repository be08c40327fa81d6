package wifi

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv"
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
`
	got := ParseWPASupplicant(conf, "w")
	eap := "enterprise (802.1X/EAP) authentication"
	want := []Network{
		{SSID: "office net", PSK: `pa#ss \"word`, Source: "w"},
		{SSID: "cafe wif", PSK: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Source: "w"},
		{SSID: "open", Security: Open, Source: "w"},
		{SSID: "corp", Security: Unsupported, Why: eap, Source: "w"},
		{SSID: "old", Security: Unsupported, Why: "WEP", Source: "w"},
		{SSID: "wpa3", PSK: "longpassword", Security: SAE, Source: "w"},
		{SSID: "default eap", Security: Unsupported, Why: eap, Source: "w"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseNMKeyfile(t *testing.T) {
	data := "[connection]\nid=x\ntype=wifi\n[wifi]\nssid=104;105;59;\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=secret\n"
	n, ok := ParseNMKeyfile(data, "f")
	if !ok || n.SSID != "hi;" || n.PSK != "secret" || n.Security != PSK || string(n.Keyfile) != data {
		t.Fatalf("got %+v %v", n, ok)
	}
	if _, ok := ParseNMKeyfile("[connection]\nid=eth\ntype=ethernet\n", "f"); ok {
		t.Fatal("an ethernet connection is not a wifi")
	}
}

func TestParseConnman(t *testing.T) {
	got := ParseConnman("[global]\nName=x\n[service_wifi_1_managed_psk]\nType=wifi\nSSID=6c6162\nPassphrase=p1\n[service_ethernet_2]\nName=eth\n"+
		"[service_wifi_3_managed_psk]\nName=named\nPassphrase=p3\nIPv4.method=manual\nIPv4.netmask_prefixlen=24\nIPv4.local_address=192.168.7.20\nIPv4.gateway=192.168.7.1\nNameservers=192.168.7.1;9.9.9.9;\n"+
		"[service_wifi_4_managed_ieee8021x]\nName=corp\n[service_wifi_5_managed_none]\nName=cafe\nIPv4.method=dhcp\n", "c")
	want := []Network{
		{SSID: "lab", PSK: "p1", Source: "c"},
		{SSID: "named", PSK: "p3", Source: "c", IPv4: &StaticIPv4{Address: "192.168.7.20/24", Gateway: "192.168.7.1", DNS: []string{"192.168.7.1", "9.9.9.9"}}},
		{SSID: "corp", Security: Unsupported, Why: "enterprise (802.1X/EAP) authentication", Source: "c"},
		{SSID: "cafe", Security: Open, Source: "c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// nmRead is what NetworkManager's own keyfile parser (libnm) makes of a file.
type nmRead struct {
	Error       string   `json:"error"`
	SSIDHex     string   `json:"ssid_hex"`
	KeyMgmt     string   `json:"key_mgmt"`
	PSK         string   `json:"psk"`
	EAP         []string `json:"eap"`
	IPv4Method  string   `json:"ipv4_method"`
	IPv4Addr    []string `json:"ipv4_addresses"`
	IPv4Gateway string   `json:"ipv4_gateway"`
	IPv4DNS     []string `json:"ipv4_dns"`
}

// readWithNetworkManager runs libnm's keyfile reader (Debian's
// gir1.2-nm-1.0, from the network-manager source) over the files.
func readWithNetworkManager(t *testing.T, files ...string) []nmRead {
	t.Helper()
	testenv.NeedFile(t, "/usr/lib/x86_64-linux-gnu/girepository-1.0/NM-1.0.typelib", "install gir1.2-nm-1.0 and python3-gi (scripts/test-packages)")
	out, err := exec.Command("/usr/bin/python3", append([]string{"testdata/nm-keyfile-read.py"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nm-keyfile-read: %v\n%s", err, out)
	}
	var res []nmRead
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r nmRead
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		res = append(res, r)
	}
	if len(res) != len(files) {
		t.Fatalf("%d answers for %d files:\n%s", len(res), len(files), out)
	}
	return res
}

// Every keyfile we write means to NetworkManager exactly the network it came
// from: SSID bytes, key, security and addressing.
func TestKeyfilesReadByNetworkManager(t *testing.T) {
	static := &StaticIPv4{Address: "10.1.2.3/16", Gateway: "10.1.0.1", DNS: []string{"10.1.0.53", "1.1.1.1"}}
	cases := []struct {
		n       Network
		keyMgmt string
	}{
		{Network{SSID: "plain", PSK: "secret123"}, "wpa-psk"},
		{Network{SSID: "back\\slash", PSK: `pass\word\`}, "wpa-psk"},
		{Network{SSID: "semi;colon", PSK: "semi;colon;pass"}, "wpa-psk"},
		{Network{SSID: "#hash", PSK: "#starts with hash"}, "wpa-psk"},
		{Network{SSID: " padded ", PSK: "  spaces at both ends  "}, "wpa-psk"},
		{Network{SSID: "Café ☕ 日本", PSK: "ascii-only-pass"}, "wpa-psk"},
		{Network{SSID: "bytes\x01\xff", PSK: "12345678"}, "wpa-psk"},
		{Network{SSID: "hexkey", PSK: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"}, "wpa-psk"},
		{Network{SSID: "wpa3", PSK: "sae passphrase", Security: SAE}, "sae"},
		{Network{SSID: "open cafe", Security: Open}, ""},
		{Network{SSID: "fixed", PSK: "static-ip-net", IPv4: static}, "wpa-psk"},
	}
	dir := t.TempDir()
	var files []string
	for i, c := range cases {
		kf, err := Keyfile(FileName(i+1), c.n)
		if err != nil {
			t.Fatalf("%q: %v", c.n.SSID, err)
		}
		p := filepath.Join(dir, FileName(i+1))
		os.WriteFile(p, kf, 0o600)
		files = append(files, p)
	}
	for i, got := range readWithNetworkManager(t, files...) {
		c := cases[i]
		kf, _ := os.ReadFile(files[i])
		if got.Error != "" || got.SSIDHex != hex.EncodeToString([]byte(c.n.SSID)) || got.PSK != c.n.PSK || got.KeyMgmt != c.keyMgmt {
			t.Errorf("%q: NetworkManager reads %+v\n%s", c.n.SSID, got, kf)
		}
		wantMethod, wantAddr := "auto", []string(nil)
		if c.n.IPv4 != nil {
			wantMethod, wantAddr = "manual", []string{c.n.IPv4.Address}
			if got.IPv4Gateway != c.n.IPv4.Gateway || !reflect.DeepEqual(got.IPv4DNS, c.n.IPv4.DNS) {
				t.Errorf("%q: gateway %q dns %v", c.n.SSID, got.IPv4Gateway, got.IPv4DNS)
			}
		}
		if got.IPv4Method != wantMethod || len(got.IPv4Addr) != len(wantAddr) || len(wantAddr) > 0 && got.IPv4Addr[0] != wantAddr[0] {
			t.Errorf("%q: ipv4 %s %v, want %s %v", c.n.SSID, got.IPv4Method, got.IPv4Addr, wantMethod, wantAddr)
		}
	}
}

// An enterprise or WEP network is never written as an open one: from
// wpa_supplicant or connman it is refused, from NetworkManager its own file
// goes over unchanged and stays 802.1X.
func TestEnterpriseNeverOpen(t *testing.T) {
	for _, n := range append(ParseWPASupplicant("network={\n\tssid=\"corp\"\n\tkey_mgmt=WPA-EAP\n\teap=TTLS\n\tidentity=\"a\"\n}\nnetwork={\n\tssid=\"wep\"\n\tkey_mgmt=NONE\n\twep_key0=1234567890\n}\n", "w"),
		ParseConnman("[service_wifi_1_managed_ieee8021x]\nName=corp2\n", "c")...) {
		if kf, err := Keyfile("resin-wifi-01", n); !errors.Is(err, ErrUnsupported) || kf != nil {
			t.Errorf("%q: got a keyfile (%v):\n%s", n.SSID, err, kf)
		}
	}
	for _, psk := range []string{"short", strings.Repeat("x", 64), "tab\there!"} {
		if _, err := Keyfile("resin-wifi-01", Network{SSID: "s", PSK: psk}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("PSK %q that NetworkManager rejects was written: %v", psk, err)
		}
	}
	orig := "[connection]\nid=corp\nuuid=2b0d0f1e-7c4a-4b8e-9a51-3f0c2d9e8a11\ntype=wifi\n\n[wifi]\nmode=infrastructure\nssid=corp\n\n" +
		"[wifi-security]\nkey-mgmt=wpa-eap\n\n[802-1x]\neap=peap;\nidentity=alice\npassword=s3cret\nphase2-auth=mschapv2\n\n" +
		"[ipv4]\naddress1=192.168.50.9/24,192.168.50.1\ndns=192.168.50.1;\nmethod=manual\n"
	n, ok := ParseNMKeyfile(orig, "/etc/NetworkManager/system-connections/corp.nmconnection")
	kf, err := Keyfile("resin-wifi-01", n)
	if !ok || err != nil || string(kf) != orig {
		t.Fatalf("the NetworkManager file was not carried as it is: %v %v\n%s", ok, err, kf)
	}
	p := filepath.Join(t.TempDir(), "resin-wifi-01")
	os.WriteFile(p, kf, 0o600)
	got := readWithNetworkManager(t, p)[0]
	if got.KeyMgmt != "wpa-eap" || !reflect.DeepEqual(got.EAP, []string{"peap"}) || got.IPv4Method != "manual" || got.IPv4Gateway != "192.168.50.1" {
		t.Fatalf("NetworkManager reads the carried file as %+v", got)
	}
	if refs := LocalReferences([]byte("[802-1x]\nca-cert=/etc/ssl/corp.pem\nprivate-key=file:///etc/k.pem\n[connection]\npermissions=user:pi:;\n")); len(refs) != 3 {
		t.Errorf("references: %v", refs)
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

func TestParseDhcpcd(t *testing.T) {
	d := ParseDhcpcd(`# A sample configuration for dhcpcd.
hostname
interface eth0
static ip_address=192.168.0.10/24
interface wlan0
static ip_address=192.168.1.50/24 fd51:42f8:caae:d92e::ff/64
static routers=192.168.1.1
static domain_name_servers=192.168.1.1 8.8.8.8 fd51:42f8:caae:d92e::1
ssid Lab Net
static ip_address=10.0.0.7
static routers=10.0.0.1
`)
	if got, want := d.For("wlan0", "home"), (&StaticIPv4{Address: "192.168.1.50/24", Gateway: "192.168.1.1", DNS: []string{"192.168.1.1", "8.8.8.8"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("wlan0: %+v", got)
	}
	if got := d.For("wlan0", "Lab Net"); got == nil || got.Address != "10.0.0.7/24" || got.Gateway != "10.0.0.1" {
		t.Errorf("ssid block: %+v", got)
	}
	if got := ParseDhcpcd("interface wlan0\nnohook wpa_supplicant\n").For("wlan0", "x"); got != nil {
		t.Errorf("no static setup: %+v", got)
	}
}
