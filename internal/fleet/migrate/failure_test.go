package migrate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

func TestFailureTable(t *testing.T) {
	fallback := failure{class: devproto.ClassTransfer, action: retryLater}
	for _, tc := range []struct {
		name   string
		err    error
		class  devproto.Class
		action action
	}{
		{"host key", fmt.Errorf("dial: %w", &remote.HostKeyError{Changed: true}), devproto.ClassHostKey, failNow},
		{"auth", fmt.Errorf("login: %w", remote.ErrAuth), devproto.ClassAuth, failNow},
		{"refused", fmt.Errorf("dial: %w", remote.ErrRefused), devproto.ClassRefused, retryLater},
		{"dns", remote.ErrDNS, devproto.ClassDNS, retryLater},
		{"unreachable", remote.ErrUnreachable, devproto.ClassUnreachable, retryLater},
		{"timeout", remote.ErrTimeout, devproto.ClassTimeout, retryLater},
		{"transfer", remote.ErrTransfer, devproto.ClassTransfer, retryLater},
		{"balena busy", fmt.Errorf("register: %w", balena.ErrTransient), devproto.ClassAPI, askLater},
		{"token revoked", fmt.Errorf("register: %w", balena.ErrUnauthorized), devproto.ClassAPI, stopWorker},
		{"bad settings", usage.Errorf("MIG_SSH_OPTS: bad"), devproto.ClassConfigError, failNow},
		{"device verdict", fmt.Errorf("run: %w", &DeviceError{Class: devproto.ClassNoSpace, Msg: "full"}), devproto.ClassNoSpace, failNow},
		{"unknown", errors.New("something else"), devproto.ClassTransfer, retryLater},
	} {
		f := classify(tc.err, fallback)
		if f.class != tc.class || f.action != tc.action {
			t.Errorf("%s: class %s action %d, want %s %d", tc.name, f.class, f.action, tc.class, tc.action)
		}
	}
}

// A class word this version does not know is recorded as unknown, with
// the word in FAIL_MSG and in the worker log; it is never turned into
// another class.
func TestVerdictClassComesFromTheFailureLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		want devproto.Class
		word string // in FAIL_MSG and the worker log
	}{
		{"no space", "[ts balena-migrate] INFO: checking\n[ts balena-migrate] ERROR: failed (no_space): /home has 3 MB, needs 20 MB\n", devproto.ClassNoSpace, ""},
		{"backup words are not a class", "[ts balena-migrate] INFO: backup of config.txt\n[ts balena-migrate] ERROR: failed (stage1): backup of config.txt: permission denied\n", devproto.ClassStage1, ""},
		{"read-only words are not a class", "[ts balena-migrate] ERROR: /boot is read-only\n", devproto.ClassStage1, ""},
		{"stderr after the line", "[ts balena-migrate] ERROR: failed (os): debian 8 is not supported\nbalena-migrate: migration failed: debian 8\n", devproto.ClassOS, ""},
		{"unknown word", "[ts balena-migrate] ERROR: failed (martian): ?\n", devproto.ClassUnknown, "martian"},
		{"no line", "panic: oops\n", devproto.ClassStage1, ""},
	} {
		var log strings.Builder
		v := &verdict{ulog: &strings.Builder{}, log: zerolog.New(&log)}
		v.Write([]byte(tc.out))
		v.flush()
		got, why := v.failure()
		if got != tc.want {
			t.Errorf("%s: class %s, want %s", tc.name, got, tc.want)
		}
		if said := strings.Contains(why, `"`+tc.word+`"`) && strings.Contains(log.String(), `"class":"`+tc.word+`"`); said != (tc.word != "") {
			t.Errorf("%s: FAIL_MSG adds %q; worker log %s", tc.name, why, log.String())
		}
	}
}

// The success line says whether to reboot and with what argument; only a
// plain argument is passed on to reboot.
func TestVerdictReboot(t *testing.T) {
	for _, tc := range []struct {
		out    string
		reboot bool
		arg    string
		safe   bool
	}{
		{"migration successful, rebooting system in 10 seconds\n", false, "", false},
		{"migration successful, please reboot system\n", true, "", false},
		{"migration successful, please reboot system; reboot argument: 0 tryboot\n", true, "0 tryboot", true},
		{"migration successful, please reboot system; reboot argument: 0; rm -rf /\n", true, "0; rm -rf /", false},
	} {
		v := &verdict{ulog: &strings.Builder{}, log: zerolog.Nop()}
		v.Write([]byte(tc.out))
		v.flush()
		reboot, arg := v.reboot()
		if reboot != tc.reboot || arg != tc.arg || safeRebootArg(arg) != tc.safe {
			t.Errorf("%q: reboot %v arg %q safe %v, want %v %q %v", tc.out, reboot, arg, safeRebootArg(arg), tc.reboot, tc.arg, tc.safe)
		}
	}
}

func TestVerdictMemoryIsBounded(t *testing.T) {
	v := &verdict{ulog: discard{}, log: zerolog.Nop()}
	line := []byte("[ts balena-migrate] ERROR: " + strings.Repeat("x", 100) + "\n")
	for i := 0; i < 100000; i++ {
		v.Write(line)
	}
	v.Write([]byte(strings.Repeat("y", 10*maxLine))) // no newline at all
	if len(v.errs) > keepLast || len(v.tail) > keepLast || len(v.partial) > maxLine {
		t.Fatalf("kept %d error lines, %d tail lines, %d partial bytes", len(v.errs), len(v.tail), len(v.partial))
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
