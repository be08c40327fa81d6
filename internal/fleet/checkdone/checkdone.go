// Package checkdone is the migdb-check-done pipeline: for a migrated unit,
// ask balena whether its device is online (by VPN or by heartbeat) and
// healthy and decide whether it is done, failed, or to be asked again
// later.
package checkdone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/session"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

// Checker checks one unit at a time.
type Checker struct {
	Cloud    balena.Cloud
	Settings *config.Settings
	Log      zerolog.Logger
	Now      func() time.Time
	// Devices opens the SSH sessions of the looks at devices; the zero
	// value dials for real.
	Devices session.Opener[Device]
}

// Handle is the worker.Handler of migdb-check-done.
func (k *Checker) Handle(ctx context.Context, j *worker.Job) worker.Outcome {
	var ulog io.Writer = io.Discard
	if j.Log != nil {
		ulog = j.Log
	}
	return k.check(ctx, j.Unit, ulog)
}

// check decides the outcome for u (a copy the caller owns); ulog is the
// unit's log, for what a look at the device found.
func (k *Checker) check(ctx context.Context, u *unit.Unit, ulog io.Writer) worker.Outcome {
	now := k.Now()
	fail := func(class devproto.Class, msg string) worker.Outcome { return worker.Fail(u, class, msg, now) }
	s, err := k.Settings.ForUnit(u.Settings(), u.ID())
	if err != nil {
		return fail(devproto.ClassConfigError, err.Error())
	}
	since, ok, err := u.StatusTime()
	if err != nil || !ok {
		return fail(devproto.ClassConfigError, "STATUS_TS is missing or not an epoch second")
	}
	switch st := u.Status(); st {
	case unit.StatusMigrated:
	case unit.StatusRehearsing:
		return k.rehearsal(ctx, u, s, since, now)
	default:
		return fail(devproto.ClassConfigError, fmt.Sprintf("STATUS is %q, expected MIGRATED or REHEARSING: only migrated units belong in process/", st))
	}
	uuid := u.Get(unit.FieldDeviceID)
	if !balena.ValidUUID(uuid) {
		return fail(devproto.ClassConfigError, fmt.Sprintf("DEVICE_ID %q is not a balena UUID (32 lowercase hex digits)", uuid))
	}
	st, err := k.Cloud.Status(ctx, uuid)
	missing := errors.Is(err, balena.ErrNotFound)
	if err != nil && !missing {
		if ctx.Err() != nil {
			return worker.HandBack("stopping")
		}
		if errors.Is(err, balena.ErrUnauthorized) {
			// Every unit would meet it: stop (exit 2) instead of polling.
			return worker.Outcome{Msg: "balena rejected the token", Stop: usage.Errorf("balena rejected the token while checking device %s: %w", uuid, err)}
		}
		// Whatever balena's trouble, it is not the unit's fault: ask again.
		u.SetDue(now.Add(s.Check.CheckInterval))
		return worker.Outcome{To: spool.Process, Unit: u, Msg: fmt.Sprintf("balena could not be asked (%v); asking again in %v", err, s.Check.CheckInterval)}
	}
	if st.Online() {
		return k.online(ctx, u, s, st, since, now)
	}
	age, maxAge := now.Sub(since), s.Check.MaxStatusAge
	if age > maxAge && missing {
		// A device that balena still does not know this long after it
		// was registered was deleted there.
		return fail(devproto.ClassAPI, fmt.Sprintf("device %s does not exist in balena %v after migration (deleted?); register it again with migdb-add-unit --retry", uuid, age.Round(time.Second)))
	}
	// Not online: stage 2 may have refused and the old system come back.
	// Looked at over SSH now and then, and before calling it lost.
	seenNote := ""
	if age > maxAge || lookDue(u, s.Check.Stage2LookAfter, since, now) {
		found, err := k.look(ctx, u, s)
		if ctx.Err() != nil {
			return worker.HandBack("stopping")
		}
		noteLook(u, since, now)
		why, note := readLook(found, err, u.Get(unit.FieldBootID))
		if why != "" {
			k.tag(ctx, s, uuid, string(devproto.ClassStage2))
			return fail(devproto.ClassStage2, fmt.Sprintf("device %s is back on its old system: stage 2 refused before flashing: %s (its log: %s on the device)", uuid, why, devproto.Stage2LogPath))
		}
		seenNote = "; " + note
	}
	if age > maxAge {
		// The last look: balenaOS's own SSH answers when the device was
		// flashed and booted, however it fails to reach balena.
		found, err := k.lifeline(ctx, u, s)
		if ctx.Err() != nil {
			return worker.HandBack("stopping")
		}
		port := s.Unit.OSSSHPort
		if port == 0 {
			port = DefaultOSSSHPort
		}
		if err == nil {
			fmt.Fprintf(ulog, "--- balenaOS on device %s, seen over its host SSH (port %d) %v after migration ---%s\n--- end of balenaOS diagnostics ---\n",
				uuid, port, age.Round(time.Second), found.diag)
			if found.hostKey != "" {
				u.Set(unit.FieldOSHostKey, found.hostKey)
			}
			k.tag(ctx, s, uuid, string(devproto.ClassFlashedOffline))
			return fail(devproto.ClassFlashedOffline, fmt.Sprintf("device %s was flashed and runs balenaOS (its host SSH on port %d answered, host key %s) but is not online in balena %v after migration (limit %v): its network, DNS or clock keeps it from balena; the unit log holds its NetworkManager connections and journal, the supervisor's journal, DNS and time sync",
				uuid, port, fingerprint(found.hostKey), age.Round(time.Second), maxAge))
		}
		seenNote += fmt.Sprintf("; balenaOS's host SSH (port %d) does not answer (%v)", port, err)
		k.tag(ctx, s, uuid, string(devproto.ClassLost))
		return fail(devproto.ClassLost, fmt.Sprintf("device %s not online %v after migration (limit %v)%s; check the device's console or network", uuid, age.Round(time.Second), maxAge, seenNote))
	}
	u.SetDue(now.Add(s.Check.CheckInterval))
	return worker.Outcome{To: spool.Process, Unit: u, Msg: fmt.Sprintf("device %s not online yet (%v since migration)%s; asking again in %v", uuid, age.Round(time.Second), seenNote, s.Check.CheckInterval)}
}
