package devproto

import (
	"errors"
	"strings"
)

// ErrNoFlash is how stage 2 ends a run that NO_FLASH=TRUE stops just
// before the point of no return: not a failure. Stage 2 logs it at Info
// and leaves its log in Stage2LogName, where StoppedBeforeFlashing finds
// it: a rehearsal that went as far as it should.
var ErrNoFlash = errors.New("NO_FLASH=TRUE: stopping before flashing")

// StoppedBeforeFlashing reports whether stage 2's log says it stopped as
// NO_FLASH asks.
func StoppedBeforeFlashing(log string) bool {
	for _, l := range strings.Split(log, "\n") {
		if level, msg, ok := ParseLine(l); ok && level == Info && strings.HasPrefix(msg, ErrNoFlash.Error()) {
			return true
		}
	}
	return false
}

// Refusal is why stage 2 stopped before flashing, from the log it left: its
// failure line if it wrote one, else its first ERROR line (the error that
// stopped it; the lines after it say what it did next). "" when the log
// holds no error.
func Refusal(log string) string {
	if f, ok := LastFailure(log); ok {
		return "(" + f.Named() + ") " + f.Msg
	}
	for _, l := range strings.Split(log, "\n") {
		if level, msg, ok := ParseLine(l); ok && level == Error {
			return msg
		}
	}
	return ""
}
