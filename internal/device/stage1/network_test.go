package stage1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Enterprise networks: from wpa_supplicant refused with a warning (never
// written as open), from NetworkManager carried as the original file.
func TestEnterpriseWifiMigration(t *testing.T) {
	static := buildStatic(t)
	d := newDevice(t, fixtures[2], static)
	d.cfg.NoSetup, d.cfg.MigrateAllWifis = true, true
	d.write("/etc/wpa_supplicant/wpa_supplicant.conf", []byte("network={\n\tssid=\"corp-wpa\"\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n\tidentity=\"a\"\n\tpassword=\"p\"\n}\n"))
	nm := "[connection]\nid=corp\ntype=wifi\n\n[wifi]\nssid=corp-nm\n\n[wifi-security]\nkey-mgmt=wpa-eap\n\n[802-1x]\neap=tls;\nidentity=dev\nca-cert=/etc/ssl/corp-ca.pem\n\n[ipv4]\nmethod=auto\n"
	d.write("/etc/NetworkManager/system-connections/corp.nmconnection", []byte(nm))
	if _, err := d.run(); err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	log := d.log.String()
	if !strings.Contains(log, `WARN: wifi from /etc/wpa_supplicant/wpa_supplicant.conf is not migrated: network cannot be migrated: "corp-wpa" uses enterprise (802.1X/EAP) authentication`) {
		t.Errorf("no warning for the wpa_supplicant enterprise network:\n%s", log)
	}
	if !strings.Contains(log, "refers to ca-cert /etc/ssl/corp-ca.pem") {
		t.Errorf("no warning for the certificate the carried file needs:\n%s", log)
	}
	files, _ := filepath.Glob(d.path(filepath.Join(d.home, "resin-wifi-*")))
	var carried int
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), "corp-wpa") {
			t.Errorf("%s holds the enterprise network:\n%s", f, data)
		}
		if string(data) == nm {
			carried++
		}
	}
	if carried != 1 {
		t.Errorf("the NetworkManager file was carried %d times (files %v)", carried, files)
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
	if !strings.Contains(kf, "method=manual\naddress1=192.168.4.20/24,192.168.4.1\ndns=192.168.4.1;\n") {
		t.Fatalf("resin-wifi-01 lost the static address:\n%s", kf)
	}
}
