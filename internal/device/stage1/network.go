package stage1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/wifi"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// ErrNoNetworkConfig marks a device without any network configuration to
// migrate while REQUIRE_NMGR_FILE is set.
var ErrNoNetworkConfig = errors.New("no network configuration")

// systemWifis collects the wifi networks the OS knows.
func (r *run) systemWifis() []wifi.Network {
	var ns []wifi.Network
	// wpa_supplicant leaves addressing to dhcpcd (Raspberry Pi OS up to 11):
	// a static setup there goes with the network.
	dhcpcd, _ := r.read("/etc/dhcpcd.conf")
	static := wifi.ParseDhcpcd(string(dhcpcd))
	for _, p := range []string{"/etc/wpa_supplicant/wpa_supplicant.conf", "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"} {
		if data, err := r.read(p); err == nil {
			for _, n := range wifi.ParseWPASupplicant(string(data), p) {
				if n.IPv4 = static.For("wlan0", n.SSID); n.IPv4 != nil {
					r.log.Info("wifi %q keeps its static address %s from /etc/dhcpcd.conf", n.SSID, n.IPv4.Address)
				}
				ns = append(ns, n)
			}
		}
	}
	for _, p := range r.glob("/etc/NetworkManager/system-connections/*") {
		if data, err := r.read(p); err == nil {
			if n, ok := wifi.ParseNMKeyfile(string(data), p); ok {
				ns = append(ns, n)
			}
		}
	}
	for _, p := range r.glob("/var/lib/connman/*/settings") {
		if data, err := r.read(p); err == nil {
			ns = append(ns, wifi.ParseConnman(string(data), p)...)
		}
	}
	return ns
}

func (r *run) glob(pattern string) []string {
	ms, _ := filepath.Glob(r.p(pattern))
	var out []string
	for _, m := range ms {
		rel, _ := filepath.Rel(r.root, m)
		out = append(out, "/"+filepath.ToSlash(rel))
	}
	sort.Strings(out)
	return out
}

// wifiFilter reads MIGRATE_WIFI_CFG: one SSID per line.
func (r *run) wifiFilter() (map[string]bool, error) {
	if r.cfg.MigrateWifiCfg == "" {
		return nil, nil
	}
	data, err := r.read(r.cfg.MigrateWifiCfg)
	if err != nil {
		return nil, usage.Errorf("MIGRATE_WIFI_CFG %s: %w: list one SSID per line in it or unset it", r.cfg.MigrateWifiCfg, err)
	}
	keep := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			keep[l] = true
		}
	}
	return keep, nil
}

// networkConfigs writes the resin-wifi-NN files and returns the names of all
// NetworkManager files stage 2 installs.
func (r *run) networkConfigs() ([]string, error) {
	var ns []wifi.Network
	if r.cfg.BalenaWifi {
		bc, ok, err := r.readBalenaConfig()
		if err != nil {
			return nil, err
		}
		if ok && bc.WifiSsid != "" {
			ns = append(ns, wifi.Network{SSID: bc.WifiSsid, PSK: bc.WifiKey, Source: r.cfg.BalenaConfig})
		}
	}
	if r.cfg.MigrateAllWifis || r.cfg.MigrateWifiCfg != "" {
		keep, err := r.wifiFilter()
		if err != nil {
			return nil, err
		}
		for _, n := range r.systemWifis() {
			if keep == nil || keep[n.SSID] {
				ns = append(ns, n)
			} else {
				r.log.Info("wifi %q from %s is not in MIGRATE_WIFI_CFG: not migrated", n.SSID, n.Source)
			}
		}
	}
	next := 1 + r.cfg.HasWifiCfg
	var names []string
	for _, n := range wifi.Dedupe(ns) {
		name := wifi.FileName(next)
		kf, err := wifi.Keyfile(name, n)
		if err != nil {
			r.log.Warn("wifi from %s is not migrated: %v: write a NetworkManager file for it and add it to COPY_NMGR_FILES", n.Source, err)
			continue
		}
		next++
		if err := r.writeOwn(filepath.Join(r.cfg.HomeDir, name), kf, 0o600); err != nil {
			return nil, err
		}
		if n.Keyfile != nil {
			r.log.Info("wifi %q migrates as %s: the NetworkManager file %s as it is", n.SSID, name, n.Source)
			if refs := wifi.LocalReferences(n.Keyfile); len(refs) > 0 {
				r.log.Warn("%s refers to %s, which balenaOS will not have: check that the network still connects", n.Source, strings.Join(refs, ", "))
			}
		} else {
			r.log.Info("wifi %q from %s migrates as %s", n.SSID, n.Source, name)
		}
		names = append(names, name)
	}
	copied, err := r.copyNmgrFiles()
	if err != nil {
		return nil, err
	}
	names = append(names, copied...)
	if len(names) == 0 && r.cfg.RequireNmgrFile {
		return nil, fmt.Errorf("%w: REQUIRE_NMGR_FILE is set but no wifi (wpa_supplicant, NetworkManager, connman, config.json) or COPY_NMGR_FILES was found: without one the device would come up offline; add a NetworkManager file to COPY_NMGR_FILES or unset REQUIRE_NMGR_FILE for wired devices", ErrNoNetworkConfig)
	}
	return names, nil
}

// copyNmgrFiles brings COPY_NMGR_FILES into the home dir (they usually are
// there already) and returns their names.
func (r *run) copyNmgrFiles() ([]string, error) {
	var names []string
	for _, p := range r.cfg.CopyNmgrFiles {
		data, err := r.read(p)
		if err != nil {
			return nil, usage.Errorf("COPY_NMGR_FILES: %w: put the NetworkManager file into %s or fix the list", err, r.cfg.HomeDir)
		}
		name := filepath.Base(p)
		if filepath.Dir(p) != r.cfg.HomeDir {
			if err := r.writeOwn(filepath.Join(r.cfg.HomeDir, name), data, 0o600); err != nil {
				return nil, err
			}
		}
		r.log.Info("NetworkManager file %s is installed as is", name)
		names = append(names, name)
	}
	return names, nil
}

// writeOwn writes one of stage 1's own output files, journaled.
func (r *run) writeOwn(path string, data []byte, perm os.FileMode) error {
	if err := r.journal.Replace(path); err != nil {
		return err
	}
	if err := os.WriteFile(r.p(path), data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
