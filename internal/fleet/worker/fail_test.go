package worker

import (
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
)

func TestFail(t *testing.T) {
	u, err := unit.Parse([]byte("UNIT_ID=gw-1\nMIG_SSH_HOST=10.0.0.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	o := Fail(u, devproto.ClassNoSpace, "not enough space\nin /home", now)
	if o.To != spool.Fail || o.Unit != u || o.Stop != nil || o.Msg != "failed (no_space): not enough space\nin /home" {
		t.Errorf("outcome %+v", o)
	}
	if u.Get(unit.FieldFailClass) != "no_space" || u.Get(unit.FieldFailMsg) != "not enough space in /home" || u.Get(unit.FieldFailTS) != "1700000000" {
		t.Errorf("unit: class %q msg %q ts %q", u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg), u.Get(unit.FieldFailTS))
	}
}
