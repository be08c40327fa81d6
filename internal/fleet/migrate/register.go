package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"path"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
)

// register pre-registers the device in balena. DEVICE_ID is saved before
// registering, so a retry after any crash re-uses the same UUID and never
// creates a second device.
func (j *job) register(ctx context.Context, _ Device) (worker.Outcome, bool) {
	uuid := j.u.Get(unit.FieldDeviceID)
	if !balena.ValidUUID(uuid) {
		uuid = balena.NewUUID()
		if err := j.u.Set(unit.FieldDeviceID, uuid); err != nil {
			return j.fail(devproto.ClassOther, err.Error()), false
		}
		if err := j.save(j.u); err != nil {
			return worker.HandBack("cannot save DEVICE_ID: " + err.Error()), false
		}
	}
	app := j.s.Unit.App
	if j.env.slug != "" {
		j.u.Set(unit.FieldDeviceType, j.env.slug)
	}
	j.step("registering device %s in balena fleet %s as %s", uuid, app, orDefault(j.env.slug, "the fleet's device type"))
	r := balena.Registration{Fleet: app, UUID: uuid, DeviceType: j.env.slug, Name: j.u.ID()}
	if j.s.Migrate.TagDevices {
		r.Tags = map[string]string{"migdb_unit": j.u.ID(), "migdb_host": j.s.Unit.SSHHost}
	}
	dev, err := j.Cloud.Register(ctx, r)
	if err != nil {
		return j.cloudTrouble(ctx, devproto.ClassRegister, "registering the device", err), false
	}
	if dev.Existing {
		j.step("device %s was already registered (id %d): re-using it", uuid, dev.ID)
	} else {
		j.step("device %s registered (id %d)", uuid, dev.ID)
	}
	j.device = dev
	j.progress(ctx, "registered")
	return worker.Outcome{}, true
}

// sendConfig builds the device's config.json and puts it next to
// balena-migrate on the device.
func (j *job) sendConfig(ctx context.Context, dev Device) (worker.Outcome, bool) {
	uuid := j.u.Get(unit.FieldDeviceID)
	ver := j.s.Unit.BalenaVer
	j.step("generating config.json for balenaOS %s", ver)
	data, err := j.Cloud.DeviceConfig(ctx, j.device, ver)
	if err != nil {
		return j.cloudTrouble(ctx, devproto.ClassConfig, "generating config.json", err), false
	}
	var cfg struct {
		UUID         string `json:"uuid"`
		DeviceAPIKey string `json:"deviceApiKey"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.UUID != uuid || cfg.DeviceAPIKey == "" {
		return j.fail(devproto.ClassConfig, fmt.Sprintf("config.json from balena does not carry device %s and its key (uuid %q)", uuid, cfg.UUID)), false
	}
	if len(j.osKeys) > 0 {
		if data, err = withOSKeys(data, j.osKeys); err != nil {
			return j.fail(devproto.ClassConfig, err.Error()), false
		}
		j.step("config.json lets %d key(s) of MIG_OS_SSH_KEY into balenaOS's host SSH (port 22222)", len(j.osKeys))
	}
	if err := dev.WriteFile(ctx, path.Join(devproto.Dir, devproto.BalenaConfigName), data, 0o600); err != nil {
		return j.deviceTrouble(ctx, "sending config.json", err), false
	}
	j.step("config.json for %s sent to %s/%s", uuid, devproto.Dir, devproto.BalenaConfigName)
	return worker.Outcome{}, true
}
