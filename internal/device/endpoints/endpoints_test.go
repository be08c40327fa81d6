package endpoints

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

func TestList(t *testing.T) {
	got := List(Config{APIEndpoint: "https://api.balena-cloud.com", VPNEndpoint: "cloudlink.balena-cloud.com", VPNPort: "443",
		RegistryEndpoint: "registry2.balena-cloud.com", DeltaEndpoint: "https://delta.balena-cloud.com"})
	var s []string
	for _, e := range got {
		s = append(s, e.String())
	}
	want := []string{
		"API https://api.balena-cloud.com/ping", "VPN cloudlink.balena-cloud.com:443/tcp", "registry https://registry2.balena-cloud.com/v2/",
		"delta https://delta.balena-cloud.com/", "NTP 0.resinio.pool.ntp.org:123/udp", "NTP 1.resinio.pool.ntp.org:123/udp",
		"NTP 2.resinio.pool.ntp.org:123/udp", "NTP 3.resinio.pool.ntp.org:123/udp", "DNS 8.8.8.8:53/udp",
	}
	if strings.Join(s, "\n") != strings.Join(want, "\n") || got[len(got)-1].Query != "api.balena-cloud.com" {
		t.Errorf("got\n%s", strings.Join(s, "\n"))
	}
	got = List(Config{APIEndpoint: "http://10.0.2.2:8080", VPNEndpoint: "vpn.open.example", VPNPort: float64(1194), NTPServers: "ntp.site.lan 10.0.0.1", DNSServers: "null"})
	s = nil
	for _, e := range got {
		s = append(s, e.String())
	}
	want = []string{"API http://10.0.2.2:8080/ping", "VPN vpn.open.example:1194/tcp", "NTP ntp.site.lan:123/udp", "NTP 10.0.0.1:123/udp"}
	if strings.Join(s, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s", strings.Join(s, "\n"))
	}
}

// chronyd serves NTP on a loopback port (Debian's chronyd, unpacked by
// scripts/test-setup.d/26-ntp-server).
func chronyd(t *testing.T) int {
	bin := filepath.Join(testenv.Cache(), "chrony/usr/sbin/chronyd")
	testenv.NeedFile(t, bin, "run scripts/test-setup.d/26-ntp-server; scripts/test does")
	testenv.NeedRoot(t, "chronyd runs as root")
	port := freeUDPPort(t)
	dir := t.TempDir()
	conf := fmt.Sprintf("port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\ncmdport 0\npidfile %s/pid\ndriftfile %s/drift\n", port, dir, dir)
	os.WriteFile(filepath.Join(dir, "chrony.conf"), []byte(conf), 0o644)
	cmd := exec.Command(bin, "-d", "-x", "-u", "root", "-f", filepath.Join(dir, "chrony.conf"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return port
}

// dnsmasq answers DNS on a loopback port with one name.
func dnsmasq(t *testing.T, name, addr string) int {
	bin := testenv.NeedProgram(t, "dnsmasq")
	port := freeUDPPort(t)
	cmd := exec.Command(bin, "-k", "-C", "/dev/null", "-p", strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--user=root", "--pid-file", "--address=/"+name+"/"+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return port
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Every endpoint is probed with the protocol balenaOS uses, against real
// servers: an HTTPS API whose certificate comes from config.json's
// balenaRootCA, a registry, a delta server, a TCP VPN port, chronyd, dnsmasq.
func TestProbeReachable(t *testing.T) {
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ping" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "OK")
	}))
	defer api.Close()
	reg := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer reg.Close()
	delta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer delta.Close()
	vpn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vpn.Close()
	go func() {
		for {
			c, err := vpn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ntpPort := chronyd(t)
	dnsPort := dnsmasq(t, "api.balena-cloud.com", "127.0.0.1")
	ca := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}))
	cfg := Config{APIEndpoint: api.URL, VPNEndpoint: "127.0.0.1", VPNPort: vpn.Addr().(*net.TCPAddr).Port,
		RegistryEndpoint: strings.TrimPrefix(reg.URL, "https://"), DeltaEndpoint: delta.URL, NTPServers: "127.0.0.1", DNSServers: "127.0.0.1", BalenaRootCA: ca}
	roots, err := RootCA(cfg.BalenaRootCA)
	if err != nil {
		t.Fatal(err)
	}
	p := &Prober{Timeout: 5 * time.Second, RootCAs: roots, NTPPort: ntpPort, DNSPort: dnsPort}
	var res []Result
	for try := 0; try < 20; try++ { // chronyd and dnsmasq take a moment to listen
		if res = p.Probe(context.Background(), List(cfg)); allOK(res) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := []string{"API", "HTTP 200", "VPN", "connected", "registry", "HTTP 401", "delta", "HTTP 200", "NTP", "NTP answer, stratum 8", "DNS", "DNS answer in"}
	for i, r := range res {
		if !r.OK || string(r.Kind) != want[2*i] || !strings.HasPrefix(r.Detail, want[2*i+1]) {
			t.Errorf("%d: %s", i, r)
		}
	}
	if res[0].Note != "" {
		t.Errorf("the API's certificate from balenaRootCA is not trusted: %s", res[0].Note)
	}
	// Without balenaRootCA the certificate is one this system does not
	// know: still reachable, with a note.
	p.RootCAs = nil
	if r := p.Probe(context.Background(), List(cfg)[:1])[0]; !r.OK || !strings.Contains(r.Note, "not trusted here") {
		t.Errorf("%s", r)
	}
}

func allOK(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return false
		}
	}
	return true
}

// What does not answer is reported as such, quickly where the network says
// so (a closed port).
func TestProbeUnreachable(t *testing.T) {
	closed := func(network string) int {
		if network == "udp" {
			return freeUDPPort(t)
		}
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		return port
	}
	cfg := Config{APIEndpoint: "https://127.0.0.1:" + strconv.Itoa(closed("tcp")), VPNEndpoint: "127.0.0.1", VPNPort: closed("tcp"),
		NTPServers: "127.0.0.1", DNSServers: "127.0.0.1"}
	p := &Prober{Timeout: 3 * time.Second, NTPPort: closed("udp"), DNSPort: closed("udp")}
	start := time.Now()
	res := p.Probe(context.Background(), List(cfg))
	for _, r := range res {
		if r.OK || !strings.Contains(r.Detail, "refused") {
			t.Errorf("%s", r)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closed ports took %v", d)
	}
}

// An operator who names a host and port of a plain HTTP API (a test or an
// internal setup) is told so, not refused.
func TestProbePlainHTTPBehindHTTPSName(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK") }))
	defer api.Close()
	p := &Prober{Timeout: 3 * time.Second}
	r := p.Probe(context.Background(), List(Config{APIEndpoint: "https://" + strings.TrimPrefix(api.URL, "http://"), DNSServers: "null", NTPServers: "127.0.0.1"})[:1])[0]
	if !r.OK || r.Detail[:8] != "HTTP 200" || r.Note != "it answers plain HTTP" {
		t.Fatalf("%s", r)
	}
}
