package migrate

import (
	"context"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// The phases a registered device's dashboard entry shows
// (--balena-progress), with the progress bar's percent. Until the device
// is registered there is no entry: probe, upload and pre-flight show only
// for a device an earlier attempt registered.
var phases = map[string]struct {
	state   string
	percent int
}{
	"probe":      {"probing the device", 10},
	"transfer":   {"uploading the migration environment", 20},
	"fetch":      {"downloading the image on the device", 25},
	"preflight":  {"pre-flight checks", 30},
	"registered": {"registered; sending config.json", 40},
	"run":        {"stage 1: backup, network settings, stage-2 initramfs", 60},
	"reboot":     {"rebooting into stage 2: flashing balenaOS", 80},
}

// progress shows the phase on the device's dashboard entry. Trouble
// showing it is a warning, never a reason to hold the migration back.
func (j *job) progress(ctx context.Context, phase string) {
	p, ok := phases[phase]
	uuid := j.u.Get(unit.FieldDeviceID)
	if !ok || !j.s.Migrate.Progress || j.s.Migrate.Pretend || j.s.Migrate.Rehearsal || !balena.ValidUUID(uuid) {
		return
	}
	if err := j.Cloud.SetProgress(ctx, uuid, balena.ProgressState(p.state), p.percent); err != nil && ctx.Err() == nil {
		j.warn("could not show the migration's progress on balena's dashboard: %v", err)
	}
}
