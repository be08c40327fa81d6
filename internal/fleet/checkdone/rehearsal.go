package checkdone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
)

// Device is what a look at a device needs from an SSH connection.
type Device interface {
	Output(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	Close() error
}

var _ Device = (*remote.Client)(nil) // what session.Opener dials

// lookScript prints stage 2's log left on the old system, then the boot id.
const lookScript = `cat ` + devproto.Stage2LogPath + ` 2>/dev/null; printf '\n@@boot_id\n'; cat /proc/sys/kernel/random/boot_id 2>/dev/null; true`

// rehearsal checks a rehearsed device over SSH: it must be back on its old
// system with stage 2's log beside the environment. The unit goes back to
// units/ with REHEARSAL=ok, or fails with class rehearsal; a device not
// back yet is looked at again until MIG_MAX_STATUS_AGE.
func (k *Checker) rehearsal(ctx context.Context, u *unit.Unit, s *config.Settings, since, now time.Time) worker.Outcome {
	later := func(why string) worker.Outcome {
		if age := now.Sub(since); age > s.Check.MaxStatusAge {
			return k.rehearsalFailed(u, now, fmt.Sprintf("%s %v after stage 1 (limit %v); check the device's console", why, age.Round(time.Second), s.Check.MaxStatusAge))
		}
		u.SetDue(now.Add(s.Check.CheckInterval))
		return worker.Outcome{To: spool.Process, Unit: u, Msg: fmt.Sprintf("rehearsal: %s; looking again in %v", why, s.Check.CheckInterval)}
	}
	found, err := k.look(ctx, u, s)
	switch {
	case ctx.Err() != nil:
		return worker.HandBack("stopping")
	case errors.Is(err, errUnreachable):
		return later(fmt.Sprintf("the device is not back on its old system yet (%v)", err))
	case err != nil:
		return k.rehearsalFailed(u, now, err.Error())
	}
	log, bootID := found.log, found.bootID
	rebooted := bootID != "" && u.Get(unit.FieldBootID) != "" && bootID != u.Get(unit.FieldBootID)
	switch {
	case strings.TrimSpace(log) == "" && rebooted:
		return k.rehearsalFailed(u, now, "the device rebooted but stage 2 left no log in "+devproto.Stage2LogPath+": it did not boot into stage 2")
	case strings.TrimSpace(log) == "":
		return later("the device has not rebooted yet")
	}
	if why := devproto.Refusal(log); why != "" {
		return k.rehearsalFailed(u, now, "stage 2 refused: "+why)
	}
	if !devproto.StoppedBeforeFlashing(log) {
		return k.rehearsalFailed(u, now, "stage 2's log ends without a verdict: "+lastLine(log))
	}
	msg := "rehearsal passed: the device booted into stage 2, which verified everything, stopped before flashing and booted the old system again"
	u.SetResult(unit.FieldRehearsal, true, msg, now)
	u.SetStatus(unit.StatusInit, now)
	u.Delete(unit.FieldStage1TS)
	u.Delete(unit.FieldBootID)
	u.Delete(unit.FieldDueTS)
	return worker.Outcome{To: spool.Units, Unit: u, Msg: msg + "; back in units/ for a real run"}
}

func (k *Checker) rehearsalFailed(u *unit.Unit, now time.Time, msg string) worker.Outcome {
	u.SetResult(unit.FieldRehearsal, false, msg, now)
	return worker.Fail(u, devproto.ClassRehearsal, msg, now)
}

// seen is what look found on a device.
type seen struct {
	log    string // stage 2's log beside the environment; "" when there is none
	bootID string
}

// errUnreachable: the device cannot be logged into (yet).
var errUnreachable = errors.New("device not reachable")

// look logs into the unit's device with the worker's SSH settings and
// reads stage 2's log and the boot id. A device that cannot be reached is
// errUnreachable; settings that cannot work are other errors.
func (k *Checker) look(ctx context.Context, u *unit.Unit, s *config.Settings) (seen, error) {
	o, err := k.Devices.Options(s, k.Log, func(w string) { k.Log.Warn().Str("unit", u.ID()).Msg(w) })
	if err != nil {
		return seen{}, err
	}
	dev, err := k.Devices.Open(ctx, o)
	if err != nil {
		return seen{}, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	defer dev.Close()
	out, err := dev.Output(ctx, lookScript, nil)
	if err != nil {
		return seen{}, fmt.Errorf("%w: cannot read stage 2's log: %w", errUnreachable, err)
	}
	log, bootID, _ := strings.Cut(string(out), "\n@@boot_id\n")
	return seen{log: log, bootID: strings.TrimSpace(bootID)}, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
