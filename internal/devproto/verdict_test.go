package devproto

import (
	"testing"
	"time"
)

func TestSuccessRoundTrip(t *testing.T) {
	for _, s := range []Success{
		{AskReboot: true},
		{AskReboot: true, RebootArg: "0 tryboot"},
		{RebootIn: 10},
		{RebootIn: 0},
	} {
		line := s.Format()
		got, ok := ParseSuccess(line + "\n")
		if !ok || got != s {
			t.Errorf("%+v: %q reads back as %+v %v", s, line, got, ok)
		}
	}
}

func TestParseSuccess(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Success
		ok   bool
	}{
		{"migration successful, rebooting system in 10 seconds", Success{RebootIn: 10}, true},
		{"migration successful, please reboot system", Success{AskReboot: true}, true},
		{"migration successful, please reboot system; reboot argument: 0 tryboot", Success{AskReboot: true, RebootArg: "0 tryboot"}, true},
		// read as written; whether it may be passed on is the fleet's call
		{"migration successful, please reboot system; reboot argument: 0; rm -rf /", Success{AskReboot: true, RebootArg: "0; rm -rf /"}, true},
		// after a log stamp, as a stand-in writes it
		{"[ts balena-migrate] INFO: migration successful, rebooting system in 10 seconds", Success{RebootIn: 10}, true},
		{"migration successful", Success{}, true},
		{"migration failed: x", Success{}, false},
		{"[ts balena-migrate] ERROR: failed (stage1): x", Success{}, false},
	} {
		got, ok := ParseSuccess(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseSuccess(%q) = %+v %v, want %+v %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

// Every class the list holds survives the line, and so do messages with
// the line's own punctuation in them.
func TestFailureRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, c := range Classes() {
		for _, msg := range []string{"not enough space in /home", "failed (stage1): nested: a) b", "x"} {
			f := NewFailure(c, msg)
			got, ok := ParseFailure(Line(at, Error, f.Format()))
			if !ok || got != f || got.Class != c {
				t.Errorf("%s %q: read back as %+v %v", c, msg, got, ok)
			}
		}
	}
}

func TestNewFailureIsOneLine(t *testing.T) {
	f := NewFailure(ClassStage1, "initramfs build failed: exit status 1: W: missing\nE:  no space\n")
	if f.Msg != "initramfs build failed: exit status 1: W: missing | E: no space |" {
		t.Errorf("Msg = %q", f.Msg)
	}
}

func TestParseFailure(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Failure
		ok   bool
	}{
		{"[ts balena-migrate] ERROR: failed (no_space): /home has 3 MB ", Failure{ClassNoSpace, "no_space", "/home has 3 MB"}, true},
		{"[ts balena-migrate] ERROR: failed (martian): ?", Failure{ClassUnknown, "martian", "?"}, true},
		{"[ts balena-migrate] INFO: failed (os): only a report", Failure{}, false},
		{"[ts balena-migrate] ERROR: /boot is read-only", Failure{}, false},
		{"ERROR: failed (os): not a log line", Failure{}, false},
		{"balena-migrate: migration failed: debian 8", Failure{}, false},
	} {
		got, ok := ParseFailure(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseFailure(%q) = %+v %v, want %+v %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
	if f, _ := ParseFailure("[ts balena-migrate] ERROR: failed (martian): ?"); f.Named() != `unknown "martian"` {
		t.Errorf("Named = %s", f.Named())
	}
	if f := NewFailure(ClassUnknown, "x"); f.Named() != "unknown" {
		t.Errorf("Named = %s", f.Named())
	}
}

func TestLastFailure(t *testing.T) {
	log := "[ts balena-migrate] ERROR: failed (backup): first\n[ts balena-migrate] INFO: undoing\n[ts balena-migrate] ERROR: failed (os): last\nbalena-migrate: migration failed: last\n"
	if f, ok := LastFailure(log); !ok || f.Class != ClassOS || f.Msg != "last" {
		t.Errorf("LastFailure = %+v %v", f, ok)
	}
	if _, ok := LastFailure("panic: oops\n"); ok {
		t.Error("a crash has no failure line")
	}
}

func TestClasses(t *testing.T) {
	seen := map[Class]bool{}
	for _, c := range Classes() {
		if seen[c] || !failureMsg.MatchString("failed ("+string(c)+"): x") {
			t.Errorf("class %q is listed twice or cannot be written on the failure line", c)
		}
		seen[c] = true
		if got, ok := ParseClass(string(c)); !ok || got != c {
			t.Errorf("ParseClass(%q) = %s %v", c, got, ok)
		}
	}
	if got, ok := ParseClass("martian"); ok || got != ClassUnknown {
		t.Errorf("ParseClass(martian) = %s %v", got, ok)
	}
}
