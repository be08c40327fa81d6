package checkdone

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/backoff"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// A migrated device that is not online may be back on its old system
// because stage 2 refused. Logging into every such device at every poll
// would cost a fleet one SSH login per device per minute, so a device is
// looked at only once MIG_STAGE2_LOOK_AFTER has passed since migration,
// then again after a wait that doubles from half that up to maxLookGap,
// and once more at MIG_MAX_STATUS_AGE. The unit keeps the count.
// maxLookGap is the longest wait between two looks.
const maxLookGap = time.Hour

// lookDue says whether the device of u, migrated at since and not online
// at now, is to be looked at over SSH now.
func lookDue(u *unit.Unit, after time.Duration, since, now time.Time) bool {
	n, last := looks(u, since)
	return dueLook(now.Sub(since), after, n, now.Sub(last))
}

// dueLook: age since migration, the setting, looks so far and the time
// since the last.
func dueLook(age, after time.Duration, looks int, sinceLast time.Duration) bool {
	if after <= 0 || age < after {
		return false
	}
	return looks == 0 || sinceLast >= backoff.Doubling(after/2, maxLookGap, looks)
}

// looks reads the count and time of the looks of this migration; those of
// an earlier one (a retried unit) do not count.
func looks(u *unit.Unit, since time.Time) (int, time.Time) {
	ts, err1 := strconv.ParseInt(u.Get(unit.FieldStage2LookTS), 10, 64)
	n, err2 := strconv.Atoi(u.Get(unit.FieldStage2Looks))
	if err1 != nil || err2 != nil || ts < since.Unix() || n < 0 {
		return 0, time.Time{}
	}
	return n, time.Unix(ts, 0)
}

// noteLook records a look made at now.
func noteLook(u *unit.Unit, since, now time.Time) {
	n, _ := looks(u, since)
	u.Set(unit.FieldStage2Looks, strconv.Itoa(n+1))
	u.Set(unit.FieldStage2LookTS, strconv.FormatInt(now.Unix(), 10))
}

// readLook judges what a look at a migrated device found (err: the look
// failed). why is stage 2's refusal when the device is back on its old
// system — booted again since stage 1 (when its boot id then was recorded)
// with stage 2's verdict in the log stage 2 leaves there; else why is ""
// and note says what was seen, for the unit log. A device that cannot be
// logged into is never a refusal: it may be flashing, or run balenaOS.
func readLook(found seen, err error, bootBefore string) (why, note string) {
	log := devproto.Stage2LogPath
	switch {
	case errors.Is(err, errUnreachable):
		return "", fmt.Sprintf("no SSH login to the old system (%v): flashing, or balenaOS runs", err)
	case err != nil:
		return "", fmt.Sprintf("cannot look at the device over SSH: %v", err)
	case bootBefore != "" && found.bootID == bootBefore:
		return "", "the device has not rebooted since stage 1 (same boot id)"
	case strings.TrimSpace(found.log) == "" && bootBefore != "":
		return "", "the old system is up again (new boot id) but stage 2 left no log in " + log + ": it did not boot into stage 2"
	case strings.TrimSpace(found.log) == "":
		return "", "the old system answers SSH and stage 2 left no log in " + log
	}
	if why := devproto.Refusal(found.log); why != "" {
		return why, ""
	}
	if devproto.StoppedBeforeFlashing(found.log) {
		return "it stopped before flashing because the environment's balena-migrate.conf says NO_FLASH=TRUE (a rehearsal environment in a real run)", ""
	}
	return "", "stage 2's log on the old system ends without a verdict: " + lastLine(found.log)
}
