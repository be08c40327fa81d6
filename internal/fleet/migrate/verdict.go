package migrate

import (
	"bytes"
	"regexp"
	"strings"
	"sync"

	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/rs/zerolog"
)

// The words of balena-migrate's output that decide the outcome (docs/device-protocol.md).
// Success is its last line; a failure ends with a line such as
//
//	[2026-11-28T07:00:00Z balena-migrate] ERROR: failed (no_space): not enough space in /home
//
// whose word in brackets is the unit's FAIL_CLASS.
const (
	successWords = "migration successful"
	rebootWords  = "please reboot system"
)

// failLine finds the class word of balena-migrate's failure line.
var failLine = regexp.MustCompile(`ERROR: failed \(([a-z_0-9]+)\): (.*)`)

// Stage2Log is the log stage 2 leaves beside the environment on the old
// system when it stops before flashing (a rehearsal, or a refusal); it
// ends with stage 2's verdict.
const Stage2Log = "balena-migrate-stage2.log"

// FailureLine finds the last failure line in a balena-migrate log.
func FailureLine(log string) (class unit.FailClass, msg string, ok bool) {
	for _, l := range strings.Split(log, "\n") {
		if m := failLine.FindStringSubmatch(l); m != nil {
			class, msg, ok = knownClass(m[1]), strings.TrimSpace(m[2]), true
		}
	}
	return class, msg, ok
}

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
	tail    []string // last lines, for FAIL_MSG
	errs    []string // last ERROR lines
	failed  unit.FailClass
	success bool
	reboot  bool
	// rebootArg is the argument reboot must get to boot stage 2 (a
	// Raspberry Pi's "0 tryboot"; a plain reboot boots the old system).
	rebootArg string
	sawEnd    bool // the success line was the last thing seen
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
	switch {
	case strings.Contains(l, "ERROR"):
		v.errs = keep(v.errs, l)
		v.log.Error().Str("device", l).Msg("device says")
	case strings.Contains(l, "WARN"):
		v.log.Warn().Str("device", l).Msg("device says")
	}
	if m := failLine.FindStringSubmatch(l); m != nil {
		v.failed = knownClass(m[1])
	}
	if strings.Contains(l, successWords) {
		v.success, v.sawEnd = true, true
		v.reboot = strings.Contains(l, rebootWords)
		v.rebootArg = rebootArgOf(l)
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

// class is the FAIL_CLASS balena-migrate gave in its failure line; stage1
// when it gave none (it crashed, hung or is an older version).
func (v *verdict) class() unit.FailClass {
	if v.failed != "" {
		return v.failed
	}
	return unit.FailStage1
}

// knownClass accepts the device's word only when it is a failure class
// this version knows; anything else is stage1.
func knownClass(word string) unit.FailClass {
	for _, c := range unit.FailClasses {
		if string(c) == word {
			return c
		}
	}
	return unit.FailStage1
}

// rebootArgMark introduces the argument balena-migrate asks reboot to get.
const rebootArgMark = "; reboot argument: "

// rebootArgOf is the reboot argument a success line names ("" for none).
func rebootArgOf(l string) string {
	_, arg, _ := strings.Cut(l, rebootArgMark)
	return strings.TrimSpace(arg)
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
