package unit

import "strings"

// Sanitize makes a message storable in a unit file: one line, no trailing
// backslash, bounded length.
func Sanitize(msg string) string {
	msg = strings.Join(strings.Fields(strings.NewReplacer("\x00", " ").Replace(msg)), " ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	msg = strings.TrimRight(msg, `\`)
	if strings.HasSuffix(msg, `"`) && strings.Contains(msg, "'") {
		msg += "."
	}
	return msg
}
