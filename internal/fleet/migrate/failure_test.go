package migrate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

func TestFailureTable(t *testing.T) {
	fallback := failure{class: unit.FailTransfer, action: retryLater}
	for _, tc := range []struct {
		name   string
		err    error
		class  unit.FailClass
		action action
	}{
		{"host key", fmt.Errorf("dial: %w", &remote.HostKeyError{Changed: true}), unit.FailHostKey, failNow},
		{"auth", fmt.Errorf("login: %w", remote.ErrAuth), unit.FailAuth, failNow},
		{"refused", fmt.Errorf("dial: %w", remote.ErrRefused), unit.FailRefused, retryLater},
		{"dns", remote.ErrDNS, unit.FailDNS, retryLater},
		{"unreachable", remote.ErrUnreachable, unit.FailUnreachable, retryLater},
		{"timeout", remote.ErrTimeout, unit.FailTimeout, retryLater},
		{"transfer", remote.ErrTransfer, unit.FailTransfer, retryLater},
		{"balena busy", fmt.Errorf("register: %w", balena.ErrTransient), unit.FailAPI, askLater},
		{"token revoked", fmt.Errorf("register: %w", balena.ErrUnauthorized), unit.FailAPI, stopWorker},
		{"bad settings", usage.Errorf("MIG_SSH_OPTS: bad"), unit.FailConfigError, failNow},
		{"device verdict", fmt.Errorf("run: %w", &DeviceError{Class: unit.FailNoSpace, Msg: "full"}), unit.FailNoSpace, failNow},
		{"unknown", errors.New("something else"), unit.FailTransfer, retryLater},
	} {
		f := classify(tc.err, fallback)
		if f.class != tc.class || f.action != tc.action {
			t.Errorf("%s: class %s action %d, want %s %d", tc.name, f.class, f.action, tc.class, tc.action)
		}
	}
}

func TestVerdictClassComesFromTheFailureLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		want unit.FailClass
	}{
		{"no space", "[ts balena-migrate] INFO: checking\n[ts balena-migrate] ERROR: failed (no_space): /home has 3 MB, needs 20 MB\n", unit.FailNoSpace},
		{"backup words are not a class", "[ts balena-migrate] INFO: backup of config.txt\n[ts balena-migrate] ERROR: failed (stage1): backup of config.txt: permission denied\n", unit.FailStage1},
		{"read-only words are not a class", "[ts balena-migrate] ERROR: /boot is read-only\n", unit.FailStage1},
		{"stderr after the line", "[ts balena-migrate] ERROR: failed (os): debian 8 is not supported\nbalena-migrate: migration failed: debian 8\n", unit.FailOS},
		{"unknown word", "[ts balena-migrate] ERROR: failed (martian): ?\n", unit.FailStage1},
		{"no line", "panic: oops\n", unit.FailStage1},
	} {
		v := &verdict{ulog: &strings.Builder{}, log: zerolog.Nop()}
		v.Write([]byte(tc.out))
		v.flush()
		if got := v.class(); got != tc.want {
			t.Errorf("%s: class %s, want %s", tc.name, got, tc.want)
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
		if v.reboot != tc.reboot || v.rebootArg != tc.arg || safeRebootArg(v.rebootArg) != tc.safe {
			t.Errorf("%q: reboot %v arg %q safe %v, want %v %q %v", tc.out, v.reboot, v.rebootArg, safeRebootArg(v.rebootArg), tc.reboot, tc.arg, tc.safe)
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
