package checkdone

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"golang.org/x/crypto/ssh"
)

// A flashed device that never comes online in balena is, without a look,
// only "lost": someone drives there. balenaOS keeps its own SSH server on
// port 22222, which lets in the keys of config.json's os.sshKeys
// (MIG_OS_SSH_KEY). Before calling a device lost, migdb-check-done logs in
// there: a device that answers runs balenaOS and fails as flashed_offline,
// with what its network, DNS, clock and supervisor say in the unit log.

// DefaultOSSSHPort is balenaOS's host SSH port.
const DefaultOSSSHPort = 22222

// lifelineOptions are the unit's SSH options turned to balenaOS's host
// SSH: its port, root, the same keys, agent and jump hosts — never the old
// system's password, which is not balenaOS's and must not go to a host
// whose key is new.
func lifelineOptions(o remote.Options, port int) remote.Options {
	if port == 0 {
		port = DefaultOSSSHPort
	}
	o.Port, o.User, o.Password = port, "root", ""
	return o
}

// lifelineScript prints, section by section, what keeps a balenaOS device
// from balena. Every command is limited in time; one that is missing or
// fails says so in its section, and the others still run.
const lifelineScript = `d() { printf '\n@@ %s\n' "$*"; timeout 20 "$@" 2>&1 || printf '(exit %s)\n' "$?"; }
d cat /etc/os-release
d nmcli -f NAME,UUID,TYPE,DEVICE,STATE connection show
d nmcli device status
d ip -brief address
d ip route
d cat /etc/resolv.conf
d journalctl -u NetworkManager -n 100 --no-pager
d journalctl -u balena-supervisor -n 100 --no-pager
d journalctl -u dnsmasq -n 30 --no-pager
d chronyc tracking
d chronyc sources
d date -u
api=$(sed -n 's/.*"apiEndpoint" *: *"\([^"]*\)".*/\1/p' /mnt/boot/config.json 2>/dev/null)
d curl -sS -m 10 -o /dev/null -w '%{http_code}\n' "$api/ping"
true`

// lifelineCap bounds the diagnostics kept in the unit log.
const lifelineCap = 256 << 10

// lifelineFound is what the lifeline found on a device that answered.
type lifelineFound struct {
	hostKey string // authorized_keys form
	diag    string // the diagnostics, for the unit log
}

// readLifeline runs the diagnostics on balenaOS and takes its host key.
func readLifeline(ctx context.Context, dev Device) (lifelineFound, error) {
	var f lifelineFound
	if hk, ok := dev.(interface{ HostKey() ssh.PublicKey }); ok && hk.HostKey() != nil {
		f.hostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hk.HostKey())))
	}
	out, err := dev.Output(ctx, lifelineScript, nil)
	if len(out) > lifelineCap {
		out = append(out[:lifelineCap], "\n(cut off)\n"...)
	}
	f.diag = string(out)
	if err != nil && len(out) == 0 {
		return f, fmt.Errorf("balenaOS's host SSH let us in but the diagnostics did not run: %w", err)
	}
	return f, nil
}

// fingerprint is the SHA256 fingerprint of an authorized_keys line.
func fingerprint(line string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "?"
	}
	return ssh.FingerprintSHA256(k)
}

// lifeline logs into balenaOS's host SSH on the unit's device and reads
// the diagnostics. A device that cannot be logged into there is
// errUnreachable.
func (k *Checker) lifeline(ctx context.Context, u *unit.Unit, s *config.Settings) (lifelineFound, error) {
	o, err := k.Devices.Options(s, k.Log, func(w string) { k.Log.Warn().Str("unit", u.ID()).Msg(w) })
	if err != nil {
		return lifelineFound{}, err
	}
	dev, err := k.Devices.Open(ctx, lifelineOptions(o, s.Unit.OSSSHPort))
	if err != nil {
		return lifelineFound{}, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	defer dev.Close()
	return readLifeline(ctx, dev)
}
