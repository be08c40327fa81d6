// Package nmread reads NetworkManager keyfiles with NetworkManager's own
// keyfile parser (libnm, through python3-gi and gir1.2-nm-1.0) for tests:
// what a test compares is what NetworkManager would make of a file, not
// what this project's writer meant to write.
package nmread

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

//go:embed read.py
var script []byte

// IP is an ipv4 or ipv6 setting as libnm reads it.
type IP struct {
	Method        string   `json:"method"`
	Addresses     []string `json:"addresses"`
	Gateway       string   `json:"gateway"`
	DNS           []string `json:"dns"`
	DNSSearch     []string `json:"dns_search"`
	Routes        []string `json:"routes"` // "dest/prefix,next-hop,metric" (metric -1: none)
	IgnoreAutoDNS bool     `json:"ignore_auto_dns"`
	RouteMetric   int64    `json:"route_metric"`
	NeverDefault  bool     `json:"never_default"`
}

// Conn is one connection, normalized and verified by libnm, or the error
// libnm gave reading it.
type Conn struct {
	File               string            `json:"file"`
	Error              string            `json:"error"`
	ID                 string            `json:"id"`
	UUID               string            `json:"uuid"`
	Type               string            `json:"type"`
	InterfaceName      string            `json:"interface_name"`
	Autoconnect        bool              `json:"autoconnect"`
	Controller         string            `json:"controller"`
	PortType           string            `json:"port_type"`
	MatchInterfaceName []string          `json:"match_interface_name"`
	MAC                string            `json:"mac"`
	ClonedMAC          string            `json:"cloned_mac"`
	MTU                uint32            `json:"mtu"`
	SSIDHex            string            `json:"ssid_hex"`
	Hidden             bool              `json:"hidden"`
	KeyMgmt            string            `json:"key_mgmt"`
	PSK                string            `json:"psk"`
	PSKFlags           int               `json:"psk_flags"`
	EAP                []string          `json:"eap"`
	VLANID             uint32            `json:"vlan_id"`
	VLANParent         string            `json:"vlan_parent"`
	BondOptions        map[string]string `json:"bond_options"`
	IPv4               *IP               `json:"ipv4"`
	IPv6               *IP               `json:"ipv6"`
}

// Read runs libnm's keyfile reader over the files, one Conn per file in
// order. It needs python3-gi and gir1.2-nm-1.0 (scripts/test-packages).
func Read(t testenv.TB, files ...string) []Conn {
	t.Helper()
	testenv.NeedFile(t, "/usr/lib/x86_64-linux-gnu/girepository-1.0/NM-1.0.typelib", "install gir1.2-nm-1.0 and python3-gi (scripts/test-packages)")
	dir, err := os.MkdirTemp("", "nmread-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	py := filepath.Join(dir, "read.py")
	if err := os.WriteFile(py, script, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", append([]string{py}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatal("nmread: ", err, "\n", string(out))
	}
	var res []Conn
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c Conn
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal("nmread: ", err, ": ", sc.Text())
		}
		res = append(res, c)
	}
	if len(res) != len(files) {
		t.Fatal("nmread: ", len(res), " answers for ", len(files), " files:\n", string(out))
	}
	return res
}

// ReadData writes each keyfile into a temporary directory and reads it.
func ReadData(t testenv.TB, keyfiles ...[]byte) []Conn {
	t.Helper()
	dir, err := os.MkdirTemp("", "nmread-data-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var files []string
	for i, kf := range keyfiles {
		p := filepath.Join(dir, "c"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err := os.WriteFile(p, kf, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	res := Read(t, files...)
	for i := range res {
		res[i].File = ""
	}
	return res
}
