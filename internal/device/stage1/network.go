package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/netconf"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// ErrNoNetworkConfig marks a device without any network configuration to
// migrate while REQUIRE_NMGR_FILE is set.
var ErrNoNetworkConfig = errors.New("no network configuration")

// ErrNetwork marks a device that would not be reached after the
// migration: a setup that cannot be carried, a link it is reached through
// that no carried setup brings up, or a balena API it cannot reach.
var ErrNetwork = errors.New("the device would not be reached on balenaOS")

// network is what the network check decided: the connections to write
// and the facts for config.json.
type network struct {
	plan  netconf.Plan
	facts netconf.Facts
	// given are the COPY_NMGR_FILES, installed as they are.
	given []string
}

// checkReach checks that the device will be reached on balenaOS: its
// network setups carried, the links it is reached through covered, the
// endpoints balenaOS needs answering.
func (r *run) checkReach(ctx context.Context) (network, error) {
	bc, ok, err := r.readBalenaConfig()
	if err != nil {
		return network{}, err
	}
	if !ok {
		// The pre-flight, before the device has a config.json: the
		// fleet's endpoints, when the worker left them.
		if bc, err = r.readEndpoints(); err != nil {
			return network{}, err
		}
	}
	live, err := r.host.Network()
	if err != nil {
		return network{}, fmt.Errorf("read the running network: %w", err)
	}
	n, err := r.checkNetwork(live)
	if err != nil {
		return n, err
	}
	return n, r.checkEndpoints(ctx, bc)
}

// checkNetwork reads every network setup of the device and the running
// network, and refuses what would leave the device unreachable on
// balenaOS. Nothing is written.
func (r *run) checkNetwork(live netconf.Live) (network, error) {
	var n network
	o := netconf.Options{AllWifis: r.cfg.MigrateAllWifis, Skip: r.cfg.NetworkSkip}
	keep, err := r.wifiFilter()
	if err != nil {
		return n, err
	}
	o.WifiFilter = keep
	if r.cfg.BalenaWifi {
		bc, ok, err := r.readBalenaConfig()
		if err != nil {
			return n, err
		}
		if ok && bc.WifiSsid != "" {
			sec := netconf.PSK
			if bc.WifiKey == "" {
				sec = netconf.Open
			}
			o.Wifi = append(o.Wifi, &netconf.Profile{ID: bc.WifiSsid, Kind: netconf.Wifi, SSID: bc.WifiSsid, PSK: bc.WifiKey, Security: sec, Source: r.cfg.BalenaConfig})
		}
	}
	for _, p := range r.cfg.CopyNmgrFiles {
		data, err := r.read(p)
		if err != nil {
			return n, usage.Errorf("COPY_NMGR_FILES: %w: put the NetworkManager file into %s or fix the list", err, r.cfg.HomeDir)
		}
		g, _, refusal := netconf.ParseNMKeyfile(string(data), p)
		if refusal != nil {
			// The operator's own file: said, not refused.
			r.log.Warn("COPY_NMGR_FILES %s: %s", p, refusal.Why)
		}
		o.Given = append(o.Given, g)
		n.given = append(n.given, p)
	}
	setup := netconf.Read(os.DirFS(r.root))
	n.plan = netconf.MakePlan(setup, live, o)
	for _, s := range n.plan.Infos {
		r.log.Info("network: %s", s)
	}
	for _, s := range n.plan.Warnings {
		r.log.Warn("network: %s", s)
	}
	for _, s := range n.plan.Covered {
		r.log.Info("network: %s", s)
	}
	if len(n.plan.Refused) > 0 {
		var why []string
		for _, rf := range n.plan.Refused {
			s := rf.String()
			if rf.Key != "" {
				s += " (NETWORK_SKIP=" + rf.Key + " leaves it behind)"
			}
			why = append(why, s)
		}
		return n, fmt.Errorf("%w: what cannot be carried to balenaOS: %s", ErrNetwork, strings.Join(why, "; "))
	}
	if len(n.plan.Unreachable) > 0 {
		var why []string
		for _, u := range n.plan.Unreachable {
			why = append(why, u.Why)
		}
		if r.cfg.NetworkCheck {
			return n, fmt.Errorf("%w: %s (NETWORK_CHECK=FALSE migrates it anyway)", ErrNetwork, strings.Join(why, "; "))
		}
		for _, w := range why {
			r.log.Warn("NETWORK_CHECK=FALSE: migrating although %s", w)
		}
	}
	n.facts = netconf.ReadFacts(os.DirFS(r.root), n.plan.Write)
	for _, s := range n.facts.Notes {
		r.log.Info("network: %s", s)
	}
	return n, nil
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

// networkConfigs writes the connections the network check decided on —
// resin-wifi-NN for Wi-Fi networks (after the HAS_WIFI_CFG the image has),
// resin-<kind>-NN for the others — and brings in COPY_NMGR_FILES. It
// returns the names of every NetworkManager file stage 2 installs.
func (r *run) networkConfigs(n network) ([]string, error) {
	var names []string
	count := map[netconf.Kind]int{netconf.Wifi: r.cfg.HasWifiCfg}
	for _, p := range n.plan.Write {
		kf, err := netconf.Keyfile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNetwork, err) // the check wrote it once already
		}
		count[p.Kind]++
		name := fmt.Sprintf("resin-%s-%02d", p.Kind, count[p.Kind])
		if err := r.writeOwn(filepath.Join(r.cfg.HomeDir, name), kf, 0o600); err != nil {
			return nil, err
		}
		how := "written for NetworkManager"
		if p.Keyfile != nil {
			how = "the NetworkManager file as it is"
		}
		r.log.Info("network: %s from %s goes to balenaOS as %s (%s)", p.Label(), p.Source, name, how)
		names = append(names, name)
	}
	for _, p := range n.given {
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
	if len(names) == 0 && r.cfg.RequireNmgrFile {
		return nil, fmt.Errorf("%w: REQUIRE_NMGR_FILE is set but no network setup (ifupdown, netplan, dhcpcd, NetworkManager, systemd-networkd, wpa_supplicant, connman, config.json) needs a file and COPY_NMGR_FILES is empty: without one the device would come up offline unless DHCP serves it; add a NetworkManager file to COPY_NMGR_FILES or unset REQUIRE_NMGR_FILE", ErrNoNetworkConfig)
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
