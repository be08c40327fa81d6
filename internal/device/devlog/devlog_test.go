package devlog

import (
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	at := time.Date(2026, 11, 28, 9, 0, 1, 0, time.FixedZone("CET", 3600))
	if got, want := Line(at, "ERROR", "failed (no_space): /home"), "[2026-11-28T08:00:01Z balena-migrate] ERROR: failed (no_space): /home\n"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}
