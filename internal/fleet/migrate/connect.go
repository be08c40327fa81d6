package migrate

import (
	"context"

	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
)

// connect opens the SSH connection, or says what becomes of the unit.
func (j *job) connect(ctx context.Context) (Device, worker.Outcome, bool) {
	o, err := j.Devices.Options(j.s, j.ulog.Log, func(w string) { j.warn("%s", w) })
	if err != nil {
		return nil, j.deviceTrouble(ctx, "SSH options", err), false
	}
	via := ""
	if o.ProxyJump != "" && o.ProxyJump != "none" {
		via = " via " + o.ProxyJump
	}
	j.step("connecting to %s@%s:%d%s", o.User, o.Host, o.Port, via)
	dev, err := j.Devices.Open(ctx, o)
	if err != nil {
		return nil, j.deviceTrouble(ctx, "connecting", err), false
	}
	return dev, worker.Outcome{}, true
}
