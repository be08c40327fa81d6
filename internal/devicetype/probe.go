package devicetype

import "strings"

// Probe is a POSIX shell command that prints the facts Detect needs, for a
// caller that reaches the device over SSH; ParseProbe reads its output.
const Probe = `printf '@machine\n'; uname -m; ` +
	`printf '@efi\n'; [ -d /sys/firmware/efi ] && echo yes; ` +
	`printf '@model\n'; tr -d '\000' </proc/device-tree/model 2>/dev/null; echo; ` +
	`printf '@cpuinfo\n'; cat /proc/cpuinfo 2>/dev/null; true`

// ParseProbe turns the output of Probe into Inputs.
func ParseProbe(out string) Inputs {
	var in Inputs
	sections := map[string]*strings.Builder{}
	var cur *strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(line, "@"); ok && (name == "machine" || name == "efi" || name == "model" || name == "cpuinfo") {
			cur = &strings.Builder{}
			sections[name] = cur
			continue
		}
		if cur != nil {
			cur.WriteString(line + "\n")
		}
	}
	get := func(k string) string {
		if b := sections[k]; b != nil {
			return b.String()
		}
		return ""
	}
	in.Machine = strings.TrimSpace(get("machine"))
	in.EFI = strings.TrimSpace(get("efi")) == "yes"
	in.DTModel = strings.TrimSpace(get("model"))
	in.CPUInfo = get("cpuinfo")
	return in
}
