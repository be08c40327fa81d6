package unit

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
)

func TestCheckID(t *testing.T) {
	good := []string{"a", "dev-01", "rpi_3:site@x+y", "A.b", strings.Repeat("x", 128), "9"}
	bad := []string{"", "../x", "a/b", "$(id)", "-x", ".hidden", "with space", "new\nline",
		strings.Repeat("x", 129), "semi;colon", "back`tick", "ünï"}
	for _, id := range good {
		if err := CheckID(id); err != nil {
			t.Errorf("CheckID(%q) = %v, want ok", id, err)
		}
	}
	for _, id := range bad {
		if err := CheckID(id); !errors.Is(err, ErrBadID) {
			t.Errorf("CheckID(%q) = %v, want ErrBadID", id, err)
		}
	}
}

func TestLifecycleKeepsUnknownFields(t *testing.T) {
	now := time.Unix(1700000000, 0)
	u, err := New("dev-1", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Set("OPERATOR_NOTE", "site 4, rack 2"); err != nil {
		t.Fatal(err)
	}
	u.SetDue(now.Add(time.Minute))
	if u.IsDue(now) || !u.IsDue(now.Add(time.Minute)) {
		t.Fatal("due time not honoured")
	}
	u.SetStatus(StatusMigrated, now)
	data, err := u.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{
		FieldID: "dev-1", FieldStatus: "MIGRATED", FieldCreateTS: "1700000000",
		FieldCreateISOTS: "2023-11-14T22:13:20Z", FieldMigratedISOTS: "2023-11-14T22:13:20Z",
		"OPERATOR_NOTE": "site 4, rack 2", FieldDueTS: "1700000060",
	}
	for k, want := range checks {
		if got := back.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	back.SetFail(devproto.ClassStage1, "line1\nline2\\", now)
	if got := back.Get(FieldFailMsg); got != "line1 line2" {
		t.Errorf("FAIL_MSG = %q", got)
	}
	back.ClearFail()
	if back.Has(FieldFailClass) || back.Has(FieldDueTS) {
		t.Error("ClearFail left fields")
	}
}

func TestParseRefusesBadID(t *testing.T) {
	if _, err := Parse([]byte("UNIT_ID=../etc\n")); !errors.Is(err, ErrBadID) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse([]byte("STATUS=INIT\n")); !errors.Is(err, ErrBadID) {
		t.Fatalf("missing id: err = %v", err)
	}
}
