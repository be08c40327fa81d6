package checkdone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"golang.org/x/crypto/ssh"
)

func TestDueLook(t *testing.T) {
	const m = time.Minute
	for _, tc := range []struct {
		age, after time.Duration
		looks      int
		sinceLast  time.Duration
		want       bool
	}{
		{4 * m, 5 * m, 0, 0, false},                    // too soon after migration
		{5 * m, 5 * m, 0, 0, true},                     // the first look
		{6 * m, 0, 0, 0, false},                        // 0: only at max age
		{6 * m, 5 * m, 1, m, false},                    // the second waits half the setting
		{8 * m, 5 * m, 1, 150 * time.Second, true},     //
		{9 * m, 5 * m, 2, 4 * m, false},                // the third the setting
		{9 * m, 5 * m, 2, 5 * m, true},                 //
		{9 * m, 5 * m, 3, 9 * m, false},                // then twice that
		{9 * m, 5 * m, 3, 10 * m, true},                //
		{99 * m, 5 * m, 12, 59 * m, false},             // at most an hour apart
		{99 * m, 5 * m, 12, time.Hour, true},           //
		{9 * m, time.Second, 1, time.Second / 2, true}, // a tiny setting still works
	} {
		if got := dueLook(tc.age, tc.after, tc.looks, tc.sinceLast); got != tc.want {
			t.Errorf("dueLook(age %v, after %v, %d looks, last %v ago) = %v, want %v", tc.age, tc.after, tc.looks, tc.sinceLast, got, tc.want)
		}
	}
}

// TestLooksOfAnEarlierMigration: a retried unit's count starts again.
func TestLooksOfAnEarlierMigration(t *testing.T) {
	now := time.Now()
	since := now.Add(-10 * time.Minute)
	for _, tc := range []struct {
		looks, ts string
		wantN     int
	}{
		{"", "", 0},
		{"3", strconv.FormatInt(since.Add(time.Minute).Unix(), 10), 3},
		{"3", strconv.FormatInt(since.Add(-time.Minute).Unix(), 10), 0}, // before this migration
		{"x", strconv.FormatInt(now.Unix(), 10), 0},
		{"-1", strconv.FormatInt(now.Unix(), 10), 0},
	} {
		u, _ := unit.New("u", since)
		if tc.looks != "" {
			u.Set(unit.FieldStage2Looks, tc.looks)
			u.Set(unit.FieldStage2LookTS, tc.ts)
		}
		if n, _ := looks(u, since); n != tc.wantN {
			t.Errorf("STAGE2_LOOKS=%q STAGE2_LOOK_TS=%q: %d looks, want %d", tc.looks, tc.ts, n, tc.wantN)
		}
		noteLook(u, since, now)
		if n, last := looks(u, since); n != tc.wantN+1 || last.Unix() != now.Unix() {
			t.Errorf("after a look: %d looks at %v, want %d at %v", n, last, tc.wantN+1, now)
		}
	}
}

func TestReadLook(t *testing.T) {
	const before, after = "1111-boot-before", "2222-boot-after"
	refusal := "[ts balena-migrate] INFO: verifying the image\n[ts balena-migrate] ERROR: failed (stage2): image checksum mismatch: want 1f2e, got 9a0b\n"
	for _, tc := range []struct {
		name       string
		found      seen
		err        error
		bootBefore string
		why, note  string // substrings; why "" must be empty
	}{
		{"refused after a reboot", seen{refusal, after}, nil, before, "(stage2) image checksum mismatch", ""},
		{"refused, no boot id recorded", seen{refusal, after}, nil, "", "image checksum mismatch", ""},
		{"refused, boot id unreadable", seen{refusal, ""}, nil, before, "image checksum mismatch", ""},
		{"an ERROR line without the failure line", seen{"[ts balena-migrate] ERROR: disk identity changed\n", after}, nil, before, "disk identity changed", ""},
		{"not rebooted yet", seen{refusal, before}, nil, before, "", "has not rebooted"},
		{"back without a log", seen{"", after}, nil, before, "", "did not boot into stage 2"},
		{"no log, boot unknown", seen{"\n", after}, nil, "", "", "left no log"},
		{"stopped as NO_FLASH asks", seen{"[ts balena-migrate] INFO: NO_FLASH=TRUE: stopping before flashing\n", after}, nil, before, "NO_FLASH=TRUE", ""},
		{"log without a verdict", seen{"[ts balena-migrate] INFO: copying the image\n", after}, nil, before, "", "without a verdict: [ts balena-migrate] INFO: copying"},
		{"no login", seen{}, fmt.Errorf("%w: connection refused", errUnreachable), before, "", "no SSH login"},
		{"bad settings", seen{}, errors.New("MIG_SSH_KEY: no such file"), before, "", "cannot look"},
	} {
		why, note := readLook(tc.found, tc.err, tc.bootBefore)
		if tc.why == "" && why != "" || !strings.Contains(why, tc.why) || !strings.Contains(note, tc.note) {
			t.Errorf("%s: why %q note %q, want why ~%q note ~%q", tc.name, why, note, tc.why, tc.note)
		}
		if why == "" && note == "" {
			t.Errorf("%s: neither a refusal nor a note", tc.name)
		}
	}
}

// TestStage2RefusalSeenEarly: migrated devices that are not online are
// looked at over SSH (real sshd) once MIG_STAGE2_LOOK_AFTER has passed, at
// a bounded rate: one back on its old system with stage 2's refusal fails
// as stage2 long before MIG_MAX_STATUS_AGE; one that has not rebooted, one
// that does not answer and one younger than the setting wait, and the
// second poll logs into none of them.
func TestStage2RefusalSeenEarly(t *testing.T) {
	srv := sshtest.New(t, sshtest.Config{})
	key := filepath.Join(t.TempDir(), "id")
	signer, err := sshtest.GenerateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	hostBoot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, map[string]string{config.MaxStatusAge: "900", config.CheckInterval: "60", config.Stage2Look: "60",
		config.SSHKey: key, config.KnownHosts: filepath.Join(t.TempDir(), "known_hosts"), config.ConnTimeout: "5"})
	var dials atomic.Int32
	var d remote.Dialer
	e.k.Devices.Dial = func(ctx context.Context, o remote.Options) (Device, error) {
		dials.Add(1)
		return d.Dial(ctx, o)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close() // nothing answers there

	refusal := "[ts balena-migrate] INFO: verifying the image\n[ts balena-migrate] ERROR: failed (stage2): image checksum mismatch: expected 1f2e, got 9a0b\n"
	for _, c := range []struct {
		id, bootBefore, log string
		age                 time.Duration
		port                int
	}{
		{"refused", "00000000-0000-0000-0000-000000000000", refusal, 2 * time.Minute, 0},
		{"not-rebooted", strings.TrimSpace(string(hostBoot)), refusal, 2 * time.Minute, 0},
		{"young", "00000000-0000-0000-0000-000000000000", refusal, 30 * time.Second, 0},
		{"silent", "00000000-0000-0000-0000-000000000000", "", 2 * time.Minute, closedPort},
	} {
		dev, err := srv.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()}})
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(dev.Path("migrate"), 0o755)
		os.WriteFile(dev.Path("migrate/balena-migrate-stage2.log"), []byte(c.log), 0o644)
		exec.Command("chown", "-R", dev.Name, dev.Path("migrate")).Run()
		e.migrated(t, c.id, c.age, "")
		port := srv.Port
		if c.port != 0 {
			port = c.port
		}
		e.edit(t, c.id, func(u *unit.Unit) {
			u.Set(config.SSHHost, srv.Host)
			u.Set(config.SSHPort, strconv.Itoa(port))
			u.Set(config.SSHUser, dev.Name)
			u.Set(unit.FieldBootID, c.bootBefore)
		})
	}

	e.runOnce(t)
	if d, u := e.find(t, "refused"); d != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassStage2) ||
		!strings.Contains(u.Get(unit.FieldFailMsg), "image checksum mismatch") {
		t.Fatalf("refused: in %s class %q: %s", d, u.Get(unit.FieldFailClass), u.Get(unit.FieldFailMsg))
	}
	for id, want := range map[string]string{"not-rebooted": "1", "silent": "1", "young": ""} {
		if d, u := e.find(t, id); d != spool.Process || u.Has(unit.FieldFailClass) || u.Get(unit.FieldStage2Looks) != want {
			t.Errorf("%s: in %s class %q, STAGE2_LOOKS=%q want %q: %s", id, d, u.Get(unit.FieldFailClass), u.Get(unit.FieldStage2Looks), want, readLog(t, u))
		}
	}
	if _, u := e.find(t, "silent"); !strings.Contains(readLog(t, u), "no SSH login") {
		t.Errorf("silent: the unit log does not say the device did not answer:\n%s", readLog(t, u))
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("%d SSH logins in the first poll, want 3 (not the young device)", n)
	}

	// Polled again at once: nobody is looked at again so soon.
	for _, id := range []string{"not-rebooted", "silent", "young"} {
		e.edit(t, id, func(u *unit.Unit) { u.SetDue(time.Now().Add(-time.Second)) })
	}
	e.runOnce(t)
	if n := dials.Load(); n != 3 {
		t.Errorf("%d SSH logins after the second poll, want still 3: a look per poll per device", n)
	}

	// Half the setting later the device that had not rebooted has (a new
	// boot id), and its refusal is read; the young one is looked at first.
	e.k.Now = func() time.Time { return time.Now().Add(31 * time.Second) }
	e.edit(t, "not-rebooted", func(u *unit.Unit) { u.Set(unit.FieldBootID, "00000000-0000-0000-0000-000000000001") })
	for _, id := range []string{"not-rebooted", "silent", "young"} {
		e.edit(t, id, func(u *unit.Unit) { u.SetDue(time.Now().Add(-time.Second)) })
	}
	e.runOnce(t)
	if d, u := e.find(t, "not-rebooted"); d != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassStage2) || u.Get(unit.FieldStage2Looks) != "2" {
		t.Errorf("not-rebooted, once rebooted: in %s class %q after %s looks: %s", d, u.Get(unit.FieldFailClass), u.Get(unit.FieldStage2Looks), u.Get(unit.FieldFailMsg))
	}
	if d, u := e.find(t, "silent"); d != spool.Process || u.Get(unit.FieldStage2Looks) != "2" {
		t.Errorf("silent: in %s after %s looks", d, u.Get(unit.FieldStage2Looks))
	}
	if d, u := e.find(t, "young"); d != spool.Fail || u.Get(unit.FieldFailClass) != string(devproto.ClassStage2) {
		t.Errorf("young, a minute on: in %s class %q", d, u.Get(unit.FieldFailClass))
	}
	if n := dials.Load(); n != 6 {
		t.Errorf("%d SSH logins after the third poll, want 6", n)
	}
}

// edit rewrites unit id in place with f applied.
func (e *env) edit(t *testing.T, id string, f func(*unit.Unit)) {
	t.Helper()
	found, err := e.db.Find(id)
	if err != nil || len(found) != 1 {
		t.Fatalf("unit %s found %v (%v)", id, found, err)
	}
	_, u := e.find(t, id)
	f(u)
	data, err := u.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(found[0].Path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
