package migrate

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/rs/zerolog"
)

// Limits that keep a device printing without end from growing the worker.
const (
	maxLine  = 64 << 10 // longer lines are cut
	keepLast = 5        // lines kept for FAIL_MSG
)

// verdict receives balena-migrate's output: every line to the unit log,
// WARN/ERROR lines echoed to the worker log, and what decides the outcome.
type verdict struct {
	mu      sync.Mutex
	ulog    interface{ Write([]byte) (int, error) }
	log     zerolog.Logger
	partial []byte
	tail    []string          // last lines, for FAIL_MSG
	errs    []string          // last ERROR lines
	failed  *devproto.Failure // the last failure line
	success *devproto.Success // the last success line
	sawEnd  bool              // the success line was the last thing seen
}

func (v *verdict) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ulog.Write(p)
	v.partial = append(v.partial, p...)
	for {
		i := bytes.IndexByte(v.partial, '\n')
		if i < 0 {
			break
		}
		v.line(strings.TrimRight(string(v.partial[:i]), "\r"))
		v.partial = v.partial[i+1:]
	}
	if len(v.partial) > maxLine {
		v.line(string(v.partial[:maxLine]))
		v.partial = nil
	}
	return len(p), nil
}

func (v *verdict) flush() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.partial) > 0 {
		v.line(string(v.partial))
		v.partial = nil
	}
}

func (v *verdict) line(l string) {
	if strings.TrimSpace(l) == "" {
		return
	}
	v.sawEnd = false
	switch level, _, _ := devproto.ParseLine(l); level {
	case devproto.Error:
		v.errs = keep(v.errs, l)
		v.log.Error().Str("device", l).Msg("device says")
	case devproto.Warn:
		v.log.Warn().Str("device", l).Msg("device says")
	}
	if f, ok := devproto.ParseFailure(l); ok {
		v.failed = &f
		if f.Class == devproto.ClassUnknown && f.Word != string(devproto.ClassUnknown) {
			v.log.Warn().Str("class", f.Word).Msg("the device names a failure class this worker does not know (a newer balena-migrate?): recorded as unknown")
		}
	}
	if s, ok := devproto.ParseSuccess(l); ok {
		v.success, v.sawEnd = &s, true
	}
	v.tail = keep(v.tail, l)
}

// keep appends l, keeping the last keepLast lines.
func keep(lines []string, l string) []string {
	lines = append(lines, l)
	if len(lines) > keepLast {
		lines = append(lines[:0], lines[len(lines)-keepLast:]...)
	}
	return lines
}

// last is the most telling output: the ERROR lines, else the last lines.
func (v *verdict) last() string {
	lines := v.errs
	if len(lines) == 0 {
		lines = v.tail
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, " | ")
}

// failure is the FAIL_CLASS and what to add to FAIL_MSG from
// balena-migrate's failure line: stage1 when it gave none (it crashed,
// hung or is an older version); a class this worker does not know is
// unknown, and the message keeps the device's word.
func (v *verdict) failure() (devproto.Class, string) {
	switch f := v.failed; {
	case f == nil:
		return devproto.ClassStage1, ""
	case f.Class == devproto.ClassUnknown:
		return f.Class, fmt.Sprintf(" (the device named the failure class %q, which this version of migdb-migrate does not know)", f.Word)
	default:
		return f.Class, ""
	}
}

// reboot says whether balena-migrate asked to be rebooted, and with what
// argument (a Raspberry Pi's "0 tryboot"; a plain reboot boots the old
// system).
func (v *verdict) reboot() (bool, string) {
	if v.success == nil || !v.success.AskReboot {
		return false, ""
	}
	return true, v.success.RebootArg
}

// safeRebootArg reports whether arg may be handed to reboot as root: words
// of digits and lower-case letters only.
func safeRebootArg(arg string) bool {
	for _, c := range arg {
		if !(c == ' ' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return arg != ""
}
