package stage1

import (
	"encoding/json"
	"errors"
	"github.com/fleetmig/balena-migrate/internal/device/endpoints"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/testenv/nmread"
)

// An enterprise network from wpa_supplicant cannot be written and is
// refused when picked (never written as open, never dropped); left out with
// MIGRATE_WIFI_CFG, the NetworkManager one goes over as its own file. One
// that needs a certificate file balenaOS lacks is refused.
func TestEnterpriseWifiMigration(t *testing.T) {
	static := buildStatic(t)
	setup := func(t *testing.T, caCert string) *device {
		d := newDevice(t, fixtures[2], static)
		d.cfg.NoSetup, d.cfg.MigrateAllWifis = true, true
		d.write("/sbin/wpa_supplicant", nil)
		d.write("/usr/sbin/NetworkManager", nil)
		d.write("/etc/wpa_supplicant/wpa_supplicant.conf", []byte("network={\n\tssid=\"corp-wpa\"\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n\tidentity=\"a\"\n\tpassword=\"p\"\n}\n"))
		nm := "[connection]\nid=corp\nuuid=3d1c4f4a-8e8b-4a57-9a4b-3c2d1e0f9a8b\ntype=wifi\n\n[wifi]\nssid=corp-nm\n\n[wifi-security]\nkey-mgmt=wpa-eap\n\n[802-1x]\neap=tls;\nidentity=dev\nca-cert=" + caCert + "\n\n[ipv4]\nmethod=auto\n"
		d.write("/etc/NetworkManager/system-connections/corp.nmconnection", []byte(nm))
		return d
	}
	d := setup(t, "/etc/ssl/certs/ca-certificates.crt")
	_, err := d.run()
	if !errors.Is(err, ErrNetwork) || ClassOf(err) != devproto.ClassNetwork || !strings.Contains(err.Error(), `Wi-Fi "corp-wpa": it uses enterprise (802.1X/EAP) authentication: give a NetworkManager file for it in COPY_NMGR_FILES, or leave it out with MIGRATE_WIFI_CFG`) {
		t.Fatalf("the enterprise network was not refused: %v\n%s", err, d.log.String())
	}
	d = setup(t, "/etc/ssl/certs/ca-certificates.crt")
	d.cfg.MigrateWifiCfg = filepath.Join(d.home, "wifis")
	d.write(d.cfg.MigrateWifiCfg, []byte("corp-nm\n"))
	if _, err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	if got := d.read(t, filepath.Join(d.home, "resin-wifi-01")); got != d.read(t, "/etc/NetworkManager/system-connections/corp.nmconnection") {
		t.Errorf("the NetworkManager file was not carried as it is:\n%s", got)
	}
	if _, err := os.Stat(d.path(filepath.Join(d.home, "resin-wifi-02"))); err == nil {
		t.Error("a second Wi-Fi file was written")
	}
	d = setup(t, "/etc/ssl/corp-ca.pem")
	d.cfg.MigrateWifiCfg = filepath.Join(d.home, "wifis")
	d.write(d.cfg.MigrateWifiCfg, []byte("corp-nm\n"))
	if _, err := d.run(); !errors.Is(err, ErrNetwork) || !strings.Contains(err.Error(), `connection "corp" refers to ca-cert /etc/ssl/corp-ca.pem, which balenaOS will not have`) ||
		!strings.Contains(err.Error(), "NETWORK_SKIP=3d1c4f4a-8e8b-4a57-9a4b-3c2d1e0f9a8b leaves it behind") {
		t.Fatalf("the certificate file was not refused: %v", err)
	}
}

// A static address dhcpcd gives wlan0 stays with the migrated network.
func TestWifiKeepsDhcpcdStaticAddress(t *testing.T) {
	d := newDevice(t, fixtures[0], buildStatic(t))
	d.cfg.NoSetup, d.cfg.MigrateAllWifis = true, true
	d.write("/etc/wpa_supplicant/wpa_supplicant.conf", []byte("network={\n\tssid=\"shop\"\n\tpsk=\"shop-pass-1\"\n}\n"))
	d.write("/etc/dhcpcd.conf", []byte("interface wlan0\nstatic ip_address=192.168.4.20/24\nstatic routers=192.168.4.1\nstatic domain_name_servers=192.168.4.1\n"))
	if _, err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	kf := d.read(t, filepath.Join(d.home, "resin-wifi-01"))
	if !strings.Contains(kf, "[ipv4]\nmethod=manual\naddress1=192.168.4.20/24\ngateway=192.168.4.1\ndns=192.168.4.1;\n") {
		t.Fatalf("resin-wifi-01 lost the static address:\n%s", kf)
	}
}

// A wired static setup is carried, found by its port's own hardware
// address, and the device's facts go into the config.json stage 2 writes.
func TestWiredStaticAndFactsCarried(t *testing.T) {
	d := newDevice(t, fixtures[2], buildStatic(t))
	d.cfg.NoSetup = true
	d.write("/sbin/ifup", nil)
	d.write("/etc/network/interfaces", []byte("auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n\taddress 192.168.1.20/24\n\tgateway 192.168.1.1\n\tdns-nameservers 192.168.1.53\n"))
	d.host.live.Links[0].Addrs[0].Dynamic = false // set by ifupdown, not leased
	d.write("/etc/hostname", []byte("gw-0042\n"))
	d.cfg.BalenaConfig = filepath.Join(d.home, "config.json")
	d.write(d.cfg.BalenaConfig, []byte(`{"deviceType":"genericx86-64","apiEndpoint":"https://api.example","uuid":"0123","ntpServers":"ntp.fleet.example"}`))
	if _, err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	s2 := loadS2(t, d)
	if strings.Join(s2.NetworkConfigs, " ") != "resin-ethernet-01" || s2.BalenaConfig != stage2ConfigJSON {
		t.Fatalf("NETWORK_CONFIGS %q, BALENA_CONFIG %q", s2.NetworkConfigs, s2.BalenaConfig)
	}
	c := nmread.Read(t, d.path(filepath.Join(d.home, "resin-ethernet-01")))[0]
	if c.Error != "" || c.MAC != "B8:27:EB:00:00:01" || c.InterfaceName != "" || c.IPv4.Method != "manual" ||
		strings.Join(c.IPv4.Addresses, " ") != "192.168.1.20/24" || c.IPv4.Gateway != "192.168.1.1" || strings.Join(c.IPv4.DNS, " ") != "192.168.1.53" {
		t.Errorf("NetworkManager reads resin-ethernet-01 as %+v", c)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(d.read(t, filepath.Join(d.home, stage2ConfigJSON))), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["hostname"] != "gw-0042" || cfg["dnsServers"] != "192.168.1.53" || cfg["ntpServers"] != "ntp.fleet.example" || cfg["uuid"] != "0123" {
		t.Errorf("config.json for stage 2: %v", cfg)
	}
	for _, want := range []string{`config.json: hostname "gw-0042" from /etc/hostname`, `eth0 (the default route and the SSH session) comes up on balenaOS: ethernet eth0 from /etc/network/interfaces:5`} {
		if !strings.Contains(d.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, d.log.String())
		}
	}
}

// NETWORK_CHECK=FALSE migrates a device the contract would refuse, saying so.
func TestNetworkCheckOff(t *testing.T) {
	d := newDevice(t, fixtures[2], buildStatic(t))
	d.cfg.NoSetup, d.cfg.NetworkCheck = true, false
	d.host.live.Links[0].Addrs[0].Dynamic = false
	if _, err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	if !strings.Contains(d.log.String(), "WARN: NETWORK_CHECK=FALSE: migrating although eth0 carries the default route and the SSH session but its address 192.168.1.20/24 is set by nothing balena-migrate reads") {
		t.Errorf("no warning:\n%s", d.log.String())
	}
}

// Before it has a config.json (the fleet's pre-flight), stage 1 probes the
// fleet's endpoints the worker left beside it, and reports each.
func TestPreflightProbesTheFleetsEndpoints(t *testing.T) {
	d := newDevice(t, fixtures[2], buildStatic(t))
	d.cfg.NoSetup = true
	d.cfg.APIHost, d.cfg.VPNHost = defaults().APIHost, defaults().VPNHost
	d.write(filepath.Join(d.home, devproto.EndpointsName), []byte(`{"apiEndpoint":"https://api.fleet.example","vpnEndpoint":"cloudlink.fleet.example","vpnPort":"443",`+
		`"registryEndpoint":"registry2.fleet.example","deltaEndpoint":"https://delta.fleet.example","ntpServers":"ntp.fleet.example"}`))
	d.host.unreachable = map[endpoints.Kind]bool{endpoints.NTP: true}
	if _, err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	for _, want := range []string{"INFO: reachable: API https://api.fleet.example/ping", "INFO: reachable: VPN cloudlink.fleet.example:443/tcp",
		"INFO: reachable: registry https://registry2.fleet.example/v2/", "INFO: reachable: delta https://delta.fleet.example/",
		"WARN: not reachable: NTP ntp.fleet.example:123/udp", "INFO: reachable: DNS 8.8.8.8:53/udp"} {
		if !strings.Contains(d.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, d.log.String())
		}
	}
}
