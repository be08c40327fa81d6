package devproto

import (
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	at := time.Date(2026, 11, 28, 9, 0, 1, 0, time.FixedZone("CET", 3600))
	if got, want := Line(at, Error, "failed (no_space): /home"), "[2026-11-28T08:00:01Z balena-migrate] ERROR: failed (no_space): /home\n"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level Level
		msg   string
		ok    bool
	}{
		{"[2026-11-28T08:00:01Z balena-migrate] INFO: checking: disk", Info, "checking: disk", true},
		{"[ts balena-migrate] WARN: slow disk\r", Warn, "slow disk", true},
		{"\r[ts balena-migrate] ERROR: failed (os): x", Error, "failed (os): x", true},
		{"[ts balena-migrate] DEBUG: x", "", "", false},
		{"[ts balena-migrate] ERROR", "", "", false},
		{"balena-migrate: migration failed: x", "", "", false},
		{"ERROR: failed (os): x", "", "", false},
		{"mkinitramfs balena-migrate] ERROR: x", "", "", false},
		{"", "", "", false},
	} {
		level, msg, ok := ParseLine(tc.line)
		if level != tc.level || msg != tc.msg || ok != tc.ok {
			t.Errorf("ParseLine(%q) = %q %q %v, want %q %q %v", tc.line, level, msg, ok, tc.level, tc.msg, tc.ok)
		}
	}
	at := time.Now()
	for _, lv := range []Level{Info, Warn, Error} {
		level, msg, ok := ParseLine(Line(at, lv, "a: b (c)"))
		if !ok || level != lv || msg != "a: b (c)" {
			t.Errorf("round trip at %s: %q %q %v", lv, level, msg, ok)
		}
	}
}
