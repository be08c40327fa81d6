package devproto

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Success is stage 1's last line when it succeeded: printed on its own
// (not a log line), it says who reboots the device into stage 2, and how.
type Success struct {
	// AskReboot: stage 1 asks whoever ran it to reboot the device; else
	// the device reboots itself in RebootIn seconds.
	AskReboot bool
	RebootIn  int
	// RebootArg is the argument reboot needs to boot stage 2 ("0 tryboot"
	// on a Raspberry Pi that boots stage 2 once); "" for a plain reboot.
	// Only with AskReboot.
	RebootArg string
}

const (
	successWords  = "migration successful"
	askReboot     = successWords + ", please reboot system"
	rebootArgMark = "; reboot argument: "
	selfReboot    = successWords + ", rebooting system in %d seconds"
)

// Format is the success line, without its newline.
func (s Success) Format() string {
	switch {
	case !s.AskReboot:
		return fmt.Sprintf(selfReboot, s.RebootIn)
	case s.RebootArg != "":
		return askReboot + rebootArgMark + s.RebootArg
	}
	return askReboot
}

// ParseSuccess reads a success line; ok is false for any other line. The
// words may follow other text on the line (a log stamp), and a line that
// says success in a way this version does not know asks for no reboot.
func ParseSuccess(line string) (s Success, ok bool) {
	i := strings.Index(line, successWords)
	if i < 0 {
		return Success{}, false
	}
	rest := strings.TrimRight(line[i:], "\r\n")
	if strings.HasPrefix(rest, askReboot) {
		_, arg, _ := strings.Cut(rest, rebootArgMark)
		return Success{AskReboot: true, RebootArg: strings.TrimSpace(arg)}, true
	}
	fmt.Sscanf(rest, selfReboot, &s.RebootIn)
	return s, true
}

// Failure is the verdict of a balena-migrate run that failed (stage 1,
// fetch): the message of its last ERROR line,
//
//	[<ISO ts> balena-migrate] ERROR: failed (<class>): <message>
type Failure struct {
	// Class is what the device named; ClassUnknown for a word not in
	// Classes, which Word keeps.
	Class Class
	Word  string
	Msg   string // one line
}

// NewFailure is the failure of class with msg; msg's lines are joined
// with " | " so that the verdict stays one line.
func NewFailure(class Class, msg string) Failure {
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " | ")), " ")
	return Failure{Class: class, Word: string(class), Msg: msg}
}

// Format is the message of the failure line, to be logged at Error.
func (f Failure) Format() string { return "failed (" + f.Word + "): " + f.Msg }

// Named says the class as the device named it, for a message: the class,
// or the unknown word in quotes.
func (f Failure) Named() string {
	if f.Class == ClassUnknown && f.Word != string(ClassUnknown) {
		return fmt.Sprintf("%s %s", ClassUnknown, strconv.Quote(f.Word))
	}
	return string(f.Class)
}

var failureMsg = regexp.MustCompile(`^failed \(([a-z_0-9]+)\): (.*)$`)

// ParseFailure reads a failure line (a whole log line); ok is false for
// any other line.
func ParseFailure(line string) (f Failure, ok bool) {
	level, msg, ok := ParseLine(line)
	if !ok || level != Error {
		return Failure{}, false
	}
	m := failureMsg.FindStringSubmatch(msg)
	if m == nil {
		return Failure{}, false
	}
	class, _ := ParseClass(m[1])
	return Failure{Class: class, Word: m[1], Msg: strings.TrimSpace(m[2])}, true
}

// LastFailure is the last failure line in a log.
func LastFailure(log string) (f Failure, ok bool) {
	for _, l := range strings.Split(log, "\n") {
		if g, found := ParseFailure(l); found {
			f, ok = g, true
		}
	}
	return f, ok
}
