package checkdone

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
)

// ResultTag is the device tag --tag-devices records check-done's verdict
// in: done, or the failure class.
const ResultTag = "migdb_result"

// unhealthy says why a device balena shows online is not yet a migrated
// balenaOS device: its supervisor must have reported, with the OS version
// of the image the unit was migrated with, and balena must hold the type
// it was registered as. class is "" for a healthy device.
func unhealthy(st balena.DeviceStatus, wantOS, wantType string) (class devproto.Class, why string) {
	switch {
	case st.SupervisorVersion == "":
		return devproto.ClassNoSupervisor, "no supervisor version reported"
	case st.OSVersion == "":
		return devproto.ClassWrongOS, "no OS version reported (want balenaOS " + wantOS + ")"
	case wantOS != "" && !balena.SameOSVersion(wantOS, st.OSVersion):
		return devproto.ClassWrongOS, fmt.Sprintf("it runs %q, not the image's balenaOS %s", st.OSVersion, wantOS)
	case wantType != "" && st.DeviceType != "" && st.DeviceType != wantType:
		return devproto.ClassWrongDeviceType, fmt.Sprintf("balena holds device type %s, it was registered as %s", st.DeviceType, wantType)
	}
	return "", ""
}

// online decides for a device balena shows online: done when healthy
// (ONLINE_BY and ONLINE_TS recorded; a warning when only its heartbeat
// says so, its VPN being down), else asked again until --max-age, then
// failed with the class unhealthy names.
func (k *Checker) online(ctx context.Context, u *unit.Unit, s *config.Settings, st balena.DeviceStatus, since, now time.Time) worker.Outcome {
	uuid := u.Get(unit.FieldDeviceID)
	age, maxAge := now.Sub(since), s.Check.MaxStatusAge
	by := st.OnlineBy()
	if class, why := unhealthy(st, s.Unit.BalenaVer, u.Get(unit.FieldDeviceType)); class != "" {
		if age > maxAge {
			k.tag(ctx, s, uuid, string(class))
			return worker.Fail(u, class, fmt.Sprintf("device %s is online (by %s) but not healthy %v after migration (limit %v): %s",
				uuid, by, age.Round(time.Second), maxAge, why), now)
		}
		u.SetDue(now.Add(s.Check.CheckInterval))
		return worker.Outcome{To: spool.Process, Unit: u, Msg: fmt.Sprintf("device %s is online (by %s) but %s; asking again in %v",
			uuid, by, why, s.Check.CheckInterval)}
	}
	u.Set(unit.FieldOnlineBy, by)
	u.Set(unit.FieldOnlineTS, strconv.FormatInt(now.Unix(), 10))
	u.SetStatus(unit.StatusDone, now)
	u.Delete(unit.FieldDueTS)
	k.tag(ctx, s, uuid, "done")
	if s.Migrate.Progress {
		if err := k.Cloud.SetProgress(ctx, uuid, balena.ProgressState("flashed; balenaOS is online"), 100); err != nil {
			k.Log.Warn().Str("uuid", uuid).Err(err).Msg("could not show the migration's end on balena's dashboard")
		}
	}
	msg := fmt.Sprintf("device %s is online after %v (by %s; %s, supervisor %s): done", uuid, age.Round(time.Second), by, st.OSVersion, st.SupervisorVersion)
	out := worker.Outcome{To: spool.Done, Unit: u, Msg: msg}
	if by == balena.OnlineByHeartbeat {
		out.Warn = true
		out.Msg += "; its VPN is not up (balena shows it online with reduced functionality: no remote terminal, logs or public URL until the VPN connects)"
	}
	return out
}

// tag records the verdict on the device with --tag-devices. A tag that
// cannot be set is logged, never a reason to hold the unit back.
func (k *Checker) tag(ctx context.Context, s *config.Settings, uuid, verdict string) {
	if !s.Migrate.TagDevices || !balena.ValidUUID(uuid) {
		return
	}
	if err := k.Cloud.SetTag(ctx, uuid, ResultTag, verdict); err != nil {
		k.Log.Warn().Str("uuid", uuid).Err(err).Msg("could not tag the device with " + ResultTag)
	}
}
