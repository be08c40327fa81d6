package migrate

import (
	"context"
	"encoding/json"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"path"
)

// endpointKeys are the keys of config.json that say where balenaOS talks
// to; nothing else of the fleet's config goes to the device before it is
// registered.
var endpointKeys = []string{"apiEndpoint", "vpnEndpoint", "vpnPort", "registryEndpoint", "deltaEndpoint", "ntpServers", "dnsServers", "balenaRootCA"}

// fleetConfigs is a Cloud that can give a fleet's config.json before any
// device is registered (the native API client can).
type fleetConfigs interface {
	FleetConfig(ctx context.Context, fleet, deviceType, version string) ([]byte, error)
}

// sendEndpoints puts the fleet's endpoints beside balena-migrate for the
// pre-flight. Without them (a Cloud that cannot say, or balena did not
// answer) the pre-flight probes those of balena-migrate.conf, and a stale
// file of an earlier run is removed.
func (j *job) sendEndpoints(ctx context.Context, dev Device) error {
	target := path.Join(devproto.Dir, devproto.EndpointsName)
	fc, ok := j.Cloud.(fleetConfigs)
	var data []byte
	if ok && j.s.Unit.App != "" && j.s.Unit.BalenaVer != "" {
		cfg, err := fc.FleetConfig(ctx, j.s.Unit.App, j.env.slug, j.s.Unit.BalenaVer)
		if err != nil {
			j.warn("the fleet's endpoints could not be had from balena (%v): the pre-flight probes those of balena-migrate.conf", err)
		} else if data, err = pickKeys(cfg, endpointKeys); err != nil {
			j.warn("the fleet's config.json: %v", err)
			data = nil
		}
	}
	if data == nil {
		_, err := dev.Output(ctx, "rm -f "+target, nil)
		return err
	}
	return dev.WriteFile(ctx, target, data, 0o644)
}

// pickKeys keeps only the keys of a JSON object.
func pickKeys(obj []byte, keys []string) ([]byte, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(obj, &all); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for _, k := range keys {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return json.Marshal(out)
}
