package checkdone

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/migrate"
	"github.com/fleetmig/balena-migrate/internal/remote"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
	"github.com/fleetmig/balena-migrate/internal/worker"
)

// Device is what the rehearsal check needs from an SSH connection.
type Device interface {
	Output(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	Close() error
}

// The words of stage 2's log that end a rehearsal (stage2: errStop).
const rehearsalWords = "stopping before flashing"

// lookScript prints stage 2's log left on the old system, then the boot id.
const lookScript = `cat ` + migrate.RemoteDir + `/` + migrate.Stage2Log + ` 2>/dev/null; printf '\n@@boot_id\n'; cat /proc/sys/kernel/random/boot_id 2>/dev/null; true`

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
	o, err := migrate.SSHOptions(s, k.Log, func(w string) { k.Log.Warn().Str("unit", u.ID()).Msg(w) })
	if err == nil {
		o, err = k.dialer.Resolve(o) // ~/.ssh/config, as migdb-migrate reads it
	}
	if err != nil {
		return k.rehearsalFailed(u, now, err.Error())
	}
	dial := k.Dial
	if dial == nil {
		dial = func(ctx context.Context, o remote.Options) (Device, error) { return k.dialer.Dial(ctx, o) }
	}
	dev, err := dial(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return worker.HandBack("stopping")
		}
		return later(fmt.Sprintf("the device is not back on its old system yet (%v)", err))
	}
	defer dev.Close()
	out, err := dev.Output(ctx, lookScript, nil)
	if err != nil {
		return later(fmt.Sprintf("cannot read stage 2's log (%v)", err))
	}
	log, bootID, _ := strings.Cut(string(out), "\n@@boot_id\n")
	bootID = strings.TrimSpace(bootID)
	rebooted := bootID != "" && u.Get(unit.FieldBootID) != "" && bootID != u.Get(unit.FieldBootID)
	switch {
	case strings.TrimSpace(log) == "" && rebooted:
		return k.rehearsalFailed(u, now, "the device rebooted but stage 2 left no log in "+migrate.RemoteDir+"/"+migrate.Stage2Log+": it did not boot into stage 2")
	case strings.TrimSpace(log) == "":
		return later("the device has not rebooted yet")
	}
	if class, msg, failed := migrate.FailureLine(log); failed {
		return k.rehearsalFailed(u, now, fmt.Sprintf("stage 2 refused (%s): %s", class, msg))
	}
	if !strings.Contains(log, rehearsalWords) {
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
	u.SetFail(unit.FailRehearsal, msg, now)
	return worker.Outcome{To: spool.Fail, Unit: u, Msg: fmt.Sprintf("failed (%s): %s", unit.FailRehearsal, msg)}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
