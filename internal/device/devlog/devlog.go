// Package devlog is the one line format balena-migrate writes on the
// device, in stage 1, stage 2 and extract:
//
//	[<ISO ts> balena-migrate] LEVEL: message
//
// migdb-migrate reads these lines (docs/device-protocol.md), so they are made in one place.
package devlog

import (
	"fmt"
	"time"
)

// Line is one log line at level (INFO, WARN or ERROR), ending in a newline.
func Line(now time.Time, level, msg string) string {
	return fmt.Sprintf("[%s balena-migrate] %s: %s\n", now.UTC().Format(time.RFC3339), level, msg)
}
