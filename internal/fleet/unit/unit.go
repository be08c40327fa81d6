// Package unit owns the unit file: the record of one device's migration.
//
// A unit file is a KEY=VALUE file (see package envfile) that every stage only
// adds to or updates; fields it does not know are kept. This package defines
// the field names, the states a unit moves through and what a valid unit id
// is. Its FAIL_CLASS words are devproto's classes, which the device names
// too.
package unit

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/envfile"
)

// Status is where a unit is in its migration.
type Status string

// The states of a unit, in order.
const (
	StatusInit     Status = "INIT"
	StatusMigrated Status = "MIGRATED"
	// StatusRehearsing: stage 1 ran with an environment that does not
	// flash; migdb-check-done waits for the old system to come back.
	StatusRehearsing Status = "REHEARSING"
	StatusDone       Status = "DONE"
)

// Field names written by the migdb tools.
const (
	FieldID            = "UNIT_ID"
	FieldStatus        = "STATUS"
	FieldCreateTS      = "CREATE_TS"
	FieldCreateISOTS   = "CREATE_ISOTS"
	FieldDueTS         = "DUE_TS"
	FieldConnRetries   = "MIG_CONN_RETRIES"
	FieldTransferFail  = "TRANSFER_FAIL_MSG"
	FieldOutputLog     = "UNIT_OUTPUT_LOG"
	FieldDeviceID      = "DEVICE_ID"
	FieldStatusTS      = "STATUS_TS"
	FieldMigratedISOTS = "MIGRATED_ISOTS"
	FieldDoneISOTS     = "DONE_ISOTS"
	FieldFailTS        = "FAIL_TS"
	FieldFailMsg       = "FAIL_MSG"
	FieldFailClass     = "FAIL_CLASS"
	FieldSSHPassword   = "MIG_SSH_PASSWD"
	// FieldDeviceType is the balena device type the device registers as.
	FieldDeviceType = "DEVICE_TYPE"
	// FieldStage1TS is set just before stage 1 runs for real: from then on
	// the device may be on its way to balenaOS.
	FieldStage1TS = "STAGE1_TS"
	// FieldBootID is the device's boot id before its reboot, so a reboot
	// can be told from a device that never went down.
	FieldBootID = "BOOT_ID"
	// How and when balena first showed the device online: ONLINE_BY is
	// vpn (is_online) or heartbeat (api_heartbeat_state only: online
	// without a VPN), ONLINE_TS epoch seconds.
	FieldOnlineBy = "ONLINE_BY"
	FieldOnlineTS = "ONLINE_TS"
	// Pre-flight (migdb-migrate --pretend): ok or failed, and why.
	FieldPreflight      = "PREFLIGHT"
	FieldPreflightMsg   = "PREFLIGHT_MSG"
	FieldPreflightISOTS = "PREFLIGHT_ISOTS"
	// Rehearsal (an environment that does not flash): ok or failed, and why.
	FieldRehearsal      = "REHEARSAL"
	FieldRehearsalMsg   = "REHEARSAL_MSG"
	FieldRehearsalISOTS = "REHEARSAL_ISOTS"
	// migdb-check-done's SSH looks for a stage-2 refusal since this
	// migration: how many, and the last one (epoch seconds).
	FieldStage2Looks  = "STAGE2_LOOKS"
	FieldStage2LookTS = "STAGE2_LOOK_TS"
	// FieldOSHostKey is the host key balenaOS's host SSH showed when
	// migdb-check-done reached a flashed device that was not online
	// (authorized_keys form).
	FieldOSHostKey      = "OS_HOST_KEY"
	settingFieldPattern = `^MIG_[A-Z0-9_]+$`
)

// The pipeline step a claimed unit is in, and since when (epoch seconds),
// for --stats and the status page of any host; after the pipeline, the
// last step it began.
const (
	FieldStep   = "STEP"
	FieldStepTS = "STEP_TS"
)

var (
	idRe      = regexp.MustCompile(`^[A-Za-z0-9_:@+][A-Za-z0-9._:@+-]{0,127}$`)
	settingRe = regexp.MustCompile(settingFieldPattern)
)

// ErrBadID marks a unit id that is refused.
var ErrBadID = errors.New("invalid unit id")

// CheckID validates a unit id: 1–128 characters of [A-Za-z0-9._:@+-], not
// starting with '-' or '.', so it is safe in file names and shell words.
func CheckID(id string) error {
	if !idRe.MatchString(id) {
		return fmt.Errorf("%w %q: use 1-128 characters of letters, digits and . _ : @ + -, not starting with - or .", ErrBadID, id)
	}
	return nil
}

// IsSettingField reports whether key is a unit-specific setting (MIG_*).
func IsSettingField(key string) bool { return settingRe.MatchString(key) }

// Unit is one parsed unit file.
type Unit struct {
	f *envfile.File
}

// New returns a fresh unit in state INIT, created at now.
func New(id string, now time.Time) (*Unit, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	u := &Unit{f: envfile.New()}
	u.mustSet(FieldID, id)
	u.mustSet(FieldStatus, string(StatusInit))
	u.mustSet(FieldCreateTS, strconv.FormatInt(now.Unix(), 10))
	u.mustSet(FieldCreateISOTS, ISO(now))
	return u, nil
}

// Parse reads a unit file's bytes. It requires a valid UNIT_ID.
func Parse(data []byte) (*Unit, error) {
	f, err := envfile.Parse(data)
	if err != nil {
		return nil, err
	}
	u := &Unit{f: f}
	if err := CheckID(u.ID()); err != nil {
		return nil, fmt.Errorf("%s: %w", FieldID, err)
	}
	return u, nil
}

// Marshal renders the unit file.
func (u *Unit) Marshal() ([]byte, error) { return u.f.Marshal() }

// Clone returns an independent copy.
func (u *Unit) Clone() *Unit { return &Unit{f: u.f.Clone()} }

// ID is the unit id.
func (u *Unit) ID() string { return u.f.Value(FieldID) }

// Status is the unit's state.
func (u *Unit) Status() Status { return Status(u.f.Value(FieldStatus)) }

// Get returns a field's value.
func (u *Unit) Get(key string) string { return u.f.Value(key) }

// Has reports whether a field is set.
func (u *Unit) Has(key string) bool {
	_, ok := u.f.Get(key)
	return ok
}

// Set adds or updates a field.
func (u *Unit) Set(key, value string) error { return u.f.Set(key, value) }

// Delete removes a field.
func (u *Unit) Delete(key string) { u.f.Delete(key) }

// Settings returns the unit-specific settings (MIG_* fields).
func (u *Unit) Settings() map[string]string {
	m := map[string]string{}
	for _, p := range u.f.Pairs() {
		if IsSettingField(p.Key) {
			m[p.Key] = p.Value
		}
	}
	return m
}

// Fields returns every field in file order.
func (u *Unit) Fields() []envfile.Pair { return u.f.Pairs() }

// HasSecret reports whether the file holds a password, so it must be 0600.
func (u *Unit) HasSecret() bool { return u.Get(FieldSSHPassword) != "" }

// Due returns DUE_TS; ok is false when the unit carries none (due now).
func (u *Unit) Due() (t time.Time, ok bool, err error) {
	return u.epoch(FieldDueTS)
}

// IsDue reports whether the unit may be claimed at now.
func (u *Unit) IsDue(now time.Time) bool {
	t, ok, err := u.Due()
	return err != nil || !ok || !t.After(now)
}

// SetDue sets DUE_TS.
func (u *Unit) SetDue(t time.Time) { u.mustSet(FieldDueTS, strconv.FormatInt(t.Unix(), 10)) }

// StatusTime returns STATUS_TS.
func (u *Unit) StatusTime() (time.Time, bool, error) { return u.epoch(FieldStatusTS) }

// FailTime returns FAIL_TS.
func (u *Unit) FailTime() (time.Time, bool, error) { return u.epoch(FieldFailTS) }

// CreateTime returns CREATE_TS.
func (u *Unit) CreateTime() (time.Time, bool, error) { return u.epoch(FieldCreateTS) }

// Int returns an integer field, 0 when unset.
func (u *Unit) Int(key string) (int, error) {
	v := u.Get(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a whole number", key, v)
	}
	return n, nil
}

// SetStatus moves the unit to a new state at now; extra names the ISO
// timestamp field that records the transition (e.g. MIGRATED_ISOTS).
func (u *Unit) SetStatus(s Status, now time.Time) {
	u.mustSet(FieldStatus, string(s))
	u.mustSet(FieldStatusTS, strconv.FormatInt(now.Unix(), 10))
	switch s {
	case StatusMigrated:
		u.mustSet(FieldMigratedISOTS, ISO(now))
	case StatusDone:
		u.mustSet(FieldDoneISOTS, ISO(now))
	}
}

// SetResult records a pre-flight or rehearsal result: field gets ok or
// failed, with the reason and the time beside it.
func (u *Unit) SetResult(field string, ok bool, msg string, now time.Time) {
	word := "ok"
	if !ok {
		word = "failed"
	}
	u.mustSet(field, word)
	u.mustSet(field+"_MSG", Sanitize(msg))
	u.mustSet(field+"_ISOTS", ISO(now))
}

// SetFail records why the unit failed (FAIL_CLASS is class).
func (u *Unit) SetFail(class devproto.Class, msg string, now time.Time) {
	u.mustSet(FieldFailTS, strconv.FormatInt(now.Unix(), 10))
	u.mustSet(FieldFailClass, string(class))
	u.mustSet(FieldFailMsg, Sanitize(msg))
}

// ClearFail removes the failure fields and the retry bookkeeping (for --retry).
func (u *Unit) ClearFail() {
	for _, k := range []string{FieldFailTS, FieldFailMsg, FieldFailClass, FieldConnRetries, FieldDueTS, FieldTransferFail} {
		u.f.Delete(k)
	}
}

func (u *Unit) epoch(key string) (time.Time, bool, error) {
	v, ok := u.f.Get(key)
	if !ok || v == "" {
		return time.Time{}, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s=%q is not an epoch second", key, v)
	}
	return time.Unix(n, 0), true, nil
}

// mustSet is for values this package builds itself, which are always storable.
func (u *Unit) mustSet(key, value string) {
	if err := u.f.Set(key, value); err != nil {
		panic(err)
	}
}

// Epoch formats t as the epoch seconds the *_TS fields hold.
func Epoch(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// ISO formats t as ISO-8601 UTC to the second.
func ISO(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
