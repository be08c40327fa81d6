package devproto

import (
	"fmt"
	"strings"
	"time"
)

// Level is the level of a log line.
type Level string

// The levels balena-migrate logs at. The fleet echoes WARN and ERROR lines
// to its own log.
const (
	Info  Level = "INFO"
	Warn  Level = "WARN"
	Error Level = "ERROR"
)

// lineMark ends the stamp of every log line.
const lineMark = " balena-migrate] "

// Line is one log line, ending in a newline:
//
//	[<ISO ts> balena-migrate] LEVEL: message
//
// Stage 1, stage 2, extract and fetch write every line through it.
func Line(now time.Time, level Level, msg string) string {
	return fmt.Sprintf("[%s%s%s: %s\n", now.UTC().Format(time.RFC3339), lineMark, level, msg)
}

// ParseLine splits a log line into its level and message; ok is false for
// any other line (a program's own output). What comes before the stamp is
// ignored, as a terminal's carriage return would be.
func ParseLine(l string) (level Level, msg string, ok bool) {
	i := strings.Index(l, lineMark)
	if i < 0 || !strings.Contains(l[:i], "[") {
		return "", "", false
	}
	lv, msg, ok := strings.Cut(strings.TrimRight(l[i+len(lineMark):], "\r\n"), ": ")
	switch level = Level(lv); {
	case !ok:
		return "", "", false
	case level == Info, level == Warn, level == Error:
		return level, msg, true
	}
	return "", "", false
}
