package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// templateID names a config.json template: the same for every device of a
// type in a fleet running one balenaOS version.
type templateID struct {
	appID      int64
	deviceType string
	version    string
}

// DeviceConfig builds the device's config.json from the fleet's template
// for its type and version (fetched once per client) plus the device's own
// key, id, UUID and registration time. A device registered by this call's
// Register costs no round trip; one that existed already costs one, for a
// new device key.
func (c *Client) DeviceConfig(ctx context.Context, dev balena.Device, version string) ([]byte, error) {
	op := "generate config.json for " + dev.UUID
	if err := errors.Join(balena.CheckUUID(op, dev.UUID), balena.CheckSetting(op, version, balena.SettingVersion)); err != nil {
		return nil, err
	}
	if dev.ID == 0 {
		return nil, &balena.Error{Op: op, Class: balena.ErrInvalid, Msg: "the device has no id: register it first"}
	}
	app, err := c.app(ctx, dev.Fleet)
	if err != nil {
		return nil, err
	}
	typ := dev.DeviceType
	if typ == "" {
		typ = app.deviceType
	}
	cfg, err := c.template(ctx, templateID{appID: app.id, deviceType: typ, version: version})
	if err != nil {
		return nil, err
	}
	key := dev.Key.Reveal()
	if key == "" {
		err = c.call(ctx, request{op: "create device key for " + dev.UUID, method: "POST",
			path: fmt.Sprintf("/api-key/device/%d/device-key", dev.ID), body: map[string]any{}, want: 200, out: &key})
		if err != nil {
			return nil, err
		}
	}
	return assembleConfig(cfg, key, dev.ID, dev.UUID, c.now())
}

// template returns a copy of the fleet's configuration for id, asking
// /download-config the first time. The provisioning key balena puts in it
// is never used (config.json gets the device's own key instead), so it is
// asked to expire in keyLife.
func (c *Client) template(ctx context.Context, id templateID) (map[string]json.RawMessage, error) {
	c.templateMu.Lock()
	defer c.templateMu.Unlock()
	c.mu.Lock()
	cfg, ok := c.templates[id]
	c.mu.Unlock()
	if !ok {
		err := c.call(ctx, request{op: "download the fleet's config.json", method: "POST", path: "/download-config",
			want: 200, out: &cfg,
			body: map[string]any{"appId": id.appID, "version": id.version, "network": "ethernet",
				"appUpdatePollInterval": 10, "deviceType": id.deviceType,
				"provisioningKeyName":       "balena-migrate (unused)",
				"provisioningKeyExpiryDate": c.now().Add(keyLife).UTC().Format(time.RFC3339)}})
		if err != nil {
			return nil, err
		}
		if cfg == nil {
			return nil, &balena.Error{Op: "download the fleet's config.json", Class: balena.ErrInvalid, Msg: "empty configuration in reply"}
		}
		delete(cfg, "apiKey")
		c.mu.Lock()
		c.templates[id] = cfg
		c.mu.Unlock()
	}
	return maps.Clone(cfg), nil
}

// assembleConfig turns the fleet's configuration into the device's.
func assembleConfig(cfg map[string]json.RawMessage, deviceKey string, id int64, uuid string, now time.Time) ([]byte, error) {
	if deviceKey == "" {
		return nil, &balena.Error{Op: "generate config.json for " + uuid, Class: balena.ErrInvalid,
			Msg: "empty device key in reply"}
	}
	delete(cfg, "apiKey")
	for k, v := range map[string]any{"deviceApiKey": deviceKey, "deviceId": id, "uuid": uuid,
		"registered_at": now.Unix()} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		cfg[k] = b
	}
	return json.Marshal(cfg)
}

// FleetConfig is the fleet's config.json for a device type ("": the
// fleet's own) and balenaOS version, without any key: where its devices
// will talk to. It comes from the template the registrations use, so a
// worker asks balena for it once per type and version.
func (c *Client) FleetConfig(ctx context.Context, fleet, deviceType, version string) ([]byte, error) {
	op := "the fleet's config.json"
	if err := balena.CheckFleetSettings(op, fleet, version); err != nil {
		return nil, err
	}
	app, err := c.app(ctx, fleet)
	if err != nil {
		return nil, err
	}
	if deviceType == "" {
		deviceType = app.deviceType
	}
	cfg, err := c.template(ctx, templateID{appID: app.id, deviceType: deviceType, version: version})
	if err != nil {
		return nil, err
	}
	delete(cfg, "apiKey")
	return json.Marshal(cfg)
}
