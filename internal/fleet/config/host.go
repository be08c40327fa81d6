package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

var (
	hostPort = regexp.MustCompile(`^\[?([^\]]*)\]?:([0-9]+)$`)
	dotted   = regexp.MustCompile(`^[0-9.]+$`)
	hostName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)
)

// checkHost accepts what can be a device's address: an IP address (v4 or
// v6), or a host name (which may also be a Host of ~/.ssh/config). What
// operators type from habit — user@host, host:port — is refused with the
// flag that takes the other part.
func checkHost(raw string) error {
	h := raw
	switch {
	case strings.TrimSpace(h) == "":
		return fmt.Errorf("is empty: give the device's host name or address")
	case net.ParseIP(h) != nil:
		return nil
	case strings.Contains(h, "@"):
		user, host, _ := strings.Cut(h, "@")
		return fmt.Errorf("%q holds a user: give the host alone (%s) and the user with --user %s (MIG_SSH_USER)", raw, host, user)
	}
	if m := hostPort.FindStringSubmatch(h); m != nil && (strings.Count(h, ":") == 1 || strings.HasPrefix(h, "[")) {
		return fmt.Errorf("%q holds a port: give the host alone (%s) and the port with --port %s (MIG_SSH_PORT)", raw, m[1], m[2])
	}
	switch {
	case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
		return fmt.Errorf("%q: write an IPv6 address without brackets", raw)
	case dotted.MatchString(h):
		return fmt.Errorf("%q is not an IPv4 address: it has four numbers of 0 to 255, like 10.20.0.30", raw)
	case len(h) > 253 || !hostName.MatchString(h):
		return fmt.Errorf("%q is not a host name or address: a name is letters, digits, - and _ between dots", raw)
	}
	return nil
}
