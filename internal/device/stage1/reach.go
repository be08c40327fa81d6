package stage1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/endpoints"
	"github.com/fleetmig/balena-migrate/internal/device/netconf"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// endpointConfig is where balenaOS will talk to: the API and VPN hosts the
// operator set in the config file (an empty host: not checked), else those
// of the device's config.json (a self-hosted balena's own), else
// balenaCloud's; registry, delta, NTP and DNS as config.json says.
func endpointConfig(c Config, bc balenaConfig) endpoints.Config {
	ec := bc.Config
	def := defaults()
	if c.APIHost != def.APIHost || c.APIPort != def.APIPort || ec.APIEndpoint == "" {
		own := net.JoinHostPort(c.APIHost, strconv.Itoa(c.APIPort))
		switch u, err := url.Parse(ec.APIEndpoint); {
		case c.APIHost == "":
			ec.APIEndpoint = ""
		case err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
			// The operator says where the device reaches the API (a
			// proxy, a NAT); config.json says which scheme balenaOS
			// will speak to it.
			ec.APIEndpoint = u.Scheme + "://" + own
		case c.APIPort == 80:
			ec.APIEndpoint = "http://" + own
		default:
			ec.APIEndpoint = "https://" + own
		}
	}
	if c.VPNHost != def.VPNHost || c.VPNPort != def.VPNPort || ec.VPNEndpoint == "" {
		ec.VPNEndpoint, ec.VPNPort = c.VPNHost, c.VPNPort
	}
	return ec
}

// checkEndpoints probes from the device every endpoint balenaOS will use
// and reports each; an API that does not answer is refused: the device
// would be flashed and never check in.
func (r *run) checkEndpoints(ctx context.Context, bc balenaConfig) error {
	ec := endpointConfig(*r.cfg, bc)
	roots, err := endpoints.RootCA(ec.BalenaRootCA)
	if err != nil {
		return usage.Errorf("BALENA_CONFIG %s: %w", r.cfg.BalenaConfig, err)
	}
	if ec.APIEndpoint == "" {
		r.log.Info("balena API check disabled (BALENA_API_HOST is empty)")
	}
	if ec.VPNEndpoint == "" {
		r.log.Info("balena VPN check disabled (BALENA_VPN_HOST is empty)")
	}
	p := &endpoints.Prober{Timeout: r.cfg.ConnectTimeout, RootCAs: roots}
	var apiErr error
	for _, res := range r.host.Probe(ctx, p, endpoints.List(ec)) {
		switch {
		case res.OK && res.Note != "":
			r.log.Warn("reachable: %s", res)
		case res.OK:
			r.log.Info("reachable: %s", res)
		case res.Kind == endpoints.API:
			apiErr = fmt.Errorf("%w: the balena API at %s does not answer from this device (%s): balenaOS on this network could not check in; check the network, proxy and firewall (or set BALENA_API_HOST empty to skip the check)", ErrNetwork, res.URL, res.Detail)
		default:
			r.log.Warn("not reachable: %s: balenaOS needs it (%s)", res, endpointUse[res.Kind])
		}
	}
	return apiErr
}

// endpointUse says what balenaOS uses an endpoint for.
var endpointUse = map[endpoints.Kind]string{
	endpoints.VPN:      "remote access and the online state",
	endpoints.Registry: "downloading the fleet's containers",
	endpoints.Delta:    "container updates as deltas",
	endpoints.NTP:      "the clock, without which TLS fails",
	endpoints.DNS:      "its fallback name server; dnsServers in config.json names others",
}

// stage2BalenaConfig is the config.json stage 2 writes: the fleet's, with
// the device's own name, time servers and static DNS servers where the
// fleet's config does not set them. It returns the name to give stage 2.
func (r *run) stage2BalenaConfig(facts netconf.Facts) (string, error) {
	if r.cfg.BalenaConfig == "" {
		if facts.Hostname != "" {
			r.log.Info("no config.json: the hostname %s, time servers and DNS servers are not carried", facts.Hostname)
		}
		return "", nil
	}
	data, err := r.read(r.cfg.BalenaConfig)
	if err != nil {
		return "", err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", usage.Errorf("BALENA_CONFIG %s is not valid JSON: %w", r.cfg.BalenaConfig, err)
	}
	added := 0
	add := func(key, value, from string) {
		if value == "" {
			return
		}
		if _, set := cfg[key]; set {
			r.log.Info("config.json: %s is the fleet's; the device's %q (%s) is not carried", key, value, from)
			return
		}
		b, _ := json.Marshal(value)
		cfg[key] = b
		added++
		r.log.Info("config.json: %s %q from %s", key, value, from)
	}
	add("hostname", facts.Hostname, "/etc/hostname")
	add("ntpServers", strings.Join(facts.NTPServers, " "), facts.NTPSource)
	add("dnsServers", strings.Join(facts.DNSServers, " "), facts.DNSSource)
	if added == 0 {
		return relOrAbs(r.cfg.HomeDir, r.cfg.BalenaConfig), nil
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	if err := r.writeOwn(filepath.Join(r.cfg.HomeDir, stage2ConfigJSON), out, 0o600); err != nil {
		return "", err
	}
	return stage2ConfigJSON, nil
}

// readEndpoints reads the fleet's endpoints the pre-flight left; none
// when there is no such file.
func (r *run) readEndpoints() (balenaConfig, error) {
	var bc balenaConfig
	p := filepath.Join(r.cfg.HomeDir, devproto.EndpointsName)
	data, err := r.read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return bc, nil
	}
	if err != nil {
		return bc, err
	}
	if err := json.Unmarshal(data, &bc.Config); err != nil {
		return bc, usage.Errorf("%s is not valid JSON: %w: remove it, the fleet worker writes it again", p, err)
	}
	r.log.Info("the fleet's endpoints from %s", p)
	return bc, nil
}

// stage2ConfigJSON is the config.json stage 2 writes, with the device's
// facts added, in HOME_DIR.
const stage2ConfigJSON = "balena-migrate-config.stage2.json"
