package unit

import (
	"strings"

	"github.com/fleetmig/balena-migrate/internal/envfile"
)

// Sanitize makes a message storable in a unit file: one line, no trailing
// backslash, bounded length.
func Sanitize(msg string) string {
	msg = strings.Join(strings.Fields(strings.NewReplacer("\x00", " ").Replace(msg)), " ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	msg = strings.TrimRight(msg, `\`)
	if envfile.CheckValue(msg) != nil {
		msg += "." // whatever else envfile cannot store ends differently now
	}
	return msg
}
