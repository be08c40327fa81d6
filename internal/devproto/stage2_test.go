package devproto

import (
	"fmt"
	"testing"
	"time"
)

func TestStage2Log(t *testing.T) {
	at := time.Now()
	stopped := Line(at, Info, "image verified") + Line(at, Info, fmt.Sprintf("%v; the disk is untouched", ErrNoFlash))
	refused := Line(at, Info, "verifying the image") + Line(at, Error, "image check failed: SHA-256 mismatch") +
		Line(at, Error, "stage 2 stopped before flashing; the disk is untouched")
	for _, tc := range []struct {
		name    string
		log     string
		stopped bool
		refusal string
	}{
		{"NO_FLASH", stopped, true, ""},
		{"refused", refused, false, "image check failed: SHA-256 mismatch"},
		{"failure line", "[ts balena-migrate] INFO: x\n[ts balena-migrate] ERROR: failed (stage2): image checksum mismatch\n", false, "(stage2) image checksum mismatch"},
		{"unknown class", "[ts balena-migrate] ERROR: failed (martian): ?\n", false, `(unknown "martian") ?`},
		{"the words in an error are no stop", Line(at, Error, ErrNoFlash.Error()), false, ErrNoFlash.Error()},
		{"no verdict", Line(at, Info, "stage 2 starting"), false, ""},
		{"empty", "", false, ""},
	} {
		if got := StoppedBeforeFlashing(tc.log); got != tc.stopped {
			t.Errorf("%s: StoppedBeforeFlashing = %v", tc.name, got)
		}
		if got := Refusal(tc.log); got != tc.refusal {
			t.Errorf("%s: Refusal = %q, want %q", tc.name, got, tc.refusal)
		}
	}
}
