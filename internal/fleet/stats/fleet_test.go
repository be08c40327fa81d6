package stats

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

// TestRunningFleet: the units in flight with their step and time in it,
// the units ended in the last hour and the time left at that rate, the
// rollout's wave and a pause, as text and as JSON.
func TestRunningFleet(t *testing.T) {
	db, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	write := func(d spool.Dir, name string, edit func(u *unit.Unit)) {
		id, _, _ := spool.ParseName(strings.TrimPrefix(strings.TrimPrefix(name, "units~"), "process~"))
		u, _ := unit.New(id, now.Add(-3*time.Hour))
		edit(u)
		data, _ := u.Marshal()
		if err := os.WriteFile(db.Path(d, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"w1", "w2", "w3", "w4"} {
		write(spool.Units, "unit-"+id+"-t", func(u *unit.Unit) {})
	}
	write(spool.Tmp, "units~unit-up-t", func(u *unit.Unit) {
		u.Set(unit.FieldStep, "transfer")
		u.Set(unit.FieldStepTS, unit.Epoch(now.Add(-125*time.Second)))
	})
	write(spool.Process, "unit-wait-t", func(u *unit.Unit) { u.SetStatus(unit.StatusMigrated, now.Add(-10*time.Minute)) })
	write(spool.Done, "unit-new-t", func(u *unit.Unit) { u.SetStatus(unit.StatusDone, now.Add(-20*time.Minute)) })
	write(spool.Done, "unit-old-t", func(u *unit.Unit) { u.SetStatus(unit.StatusDone, now.Add(-2*time.Hour)) })
	write(spool.Fail, "fail-bad-t", func(u *unit.Unit) { u.SetFail(devproto.ClassStage2, "refused", now.Add(-5*time.Minute)) })
	os.WriteFile(db.Path("", rollout.StateFile), rollout.State{Waves: "1,100%", Wave: 2}.Marshal(), 0o600)
	os.WriteFile(db.Path("", rollout.PausedFile), rollout.Pause{At: now, Reason: "too many", Units: []string{"bad"}, By: "h pid 1"}.Marshal(), 0o600)
	if err := db.EnsureOrdered(nil); err != nil {
		t.Fatal(err)
	}
	rows, err := Collect(db)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Summarize(db, rows, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.InFlight) != 2 || f.InFlight[0].ID != "wait" || f.InFlight[0].Step != "waiting online" || f.InFlight[0].ForSec != 600 ||
		f.InFlight[1].ID != "up" || f.InFlight[1].Step != "transfer" || f.InFlight[1].ForSec != 125 {
		t.Errorf("in flight: %+v", f.InFlight)
	}
	// 2 ended in the last hour; 6 left (4 waiting, 1 claimed, 1 migrated): 3 hours.
	if f.EndedLastHour != 2 || f.LeftSeconds != 3*3600 {
		t.Errorf("rate: %d ended, %d s left", f.EndedLastHour, f.LeftSeconds)
	}
	if f.Rollout == nil || f.Rollout.Wave != 2 || f.Rollout.Of != 2 || f.Rollout.Submitted != 9 || f.Rollout.Limit != 9 {
		t.Errorf("rollout: %+v", f.Rollout)
	}
	var b bytes.Buffer
	WriteFleet(&b, f)
	for _, want := range []string{"PAUSED since", "too many", "failed units: bad", "wave 2 of 2", "up  ", "transfer", "2m5s", "waiting online", "ended in the last hour  2", "left at that rate       3h0m0s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	WriteJSON(&b, f)
	var back Fleet
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Paused == nil || back.Paused.Reason != "too many" ||
		back.States["units"] != 4 || back.Failures["stage2"] != 1 || len(back.InFlight) != 2 {
		t.Errorf("json: %v %+v\n%s", err, back, b.String())
	}
}
