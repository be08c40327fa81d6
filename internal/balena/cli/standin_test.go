package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// standIn is a bash stand-in for the balena CLI. It prints what the real
// CLI prints for the commands this package uses, records every argv in
// argv.log, keeps registered devices as files in devices/, and is steered
// by files next to it:
//
//	apps        fleets that exist, one slug or name a line
//	logged-out  present: every command fails as when not logged in
//	fail-next   lines of error output; each run prints the first, drops
//	            it and exits 1
//	online/<uuid>  present: the device is online
//	slow        present: every command sleeps 5 s first
const standIn = `#!/bin/bash
dir=$(dirname "$0")
printf '%s\n' "$*" >> "$dir/argv.log"
die() { printf '%s\n\n' "$1" >&2; exit 1; }
[ -f "$dir/slow" ] && sleep 5
if [ -s "$dir/fail-next" ]; then
	msg=$(head -n 1 "$dir/fail-next")
	tail -n +2 "$dir/fail-next" > "$dir/fail-next.tmp"; mv "$dir/fail-next.tmp" "$dir/fail-next"
	die "$msg"
fi
[ -f "$dir/logged-out" ] && die 'Login required: use the “balena login” command to log in.'
case "$1" in
whoami)
	printf '== ACCOUNT INFORMATION\nUSERNAME: gh_ops\nEMAIL:    ops@example.com\nURL:      balena-cloud.com\n'
	;;
device)
	if [ "$2" = register ]; then
		app=$3; [ "$4" = --uuid ] || die "Unexpected argument: $4"; uuid=$5
		grep -qxF "$app" "$dir/apps" 2>/dev/null || die "BalenaApplicationNotFound: Application not found: $app"
		echo "Registering to $app: $uuid"
		[ -f "$dir/devices/$uuid" ] && die 'Request error: "uuid" must be unique.'
		mkdir -p "$dir/devices"; n=$(ls "$dir/devices" | wc -l)
		printf '%s %s\n' $((n + 101)) "$app" > "$dir/devices/$uuid"
		echo "$uuid"
	else
		uuid=$2; [ "$3" = --json ] || die "Unexpected argument: $3"
		[ -f "$dir/devices/$uuid" ] || die "BalenaDeviceNotFound: Device not found: $uuid"
		read -r id app < "$dir/devices/$uuid"
		online=false; [ -f "$dir/online/$uuid" ] && online=true
		cat <<JSON
{
    "id": $id,
    "device_name": "silent-river",
    "uuid": "$uuid",
    "is_online": $online,
    "last_connectivity_event": null,
    "status": "inactive",
    "fleet": "$app",
    "device_type": "raspberrypi3",
    "commit": "N/a",
    "dashboard_url": "https://dashboard.balena-cloud.com/devices/$uuid/summary"
}
JSON
	fi
	;;
config)
	[ "$2" = generate ] || die "Unexpected argument: $2"
	shift 2
	while [ $# -gt 0 ]; do
		case "$1" in
		--device) uuid=$2 ;; --version) ver=$2 ;; --network) net=$2 ;;
		--appUpdatePollInterval) poll=$2 ;; --output) out=$2 ;;
		*) die "Unexpected argument: $1" ;;
		esac
		shift 2
	done
	[ -f "$dir/devices/$uuid" ] || die "BalenaDeviceNotFound: Device not found: $uuid"
	read -r id app < "$dir/devices/$uuid"
	stat -c %a "$out" > "$dir/output-mode"
	printf '{"applicationId":7,"deviceType":"raspberrypi3","appUpdatePollInterval":%d,"network":"%s","os":"%s","uuid":"%s","deviceApiKey":"k3y","deviceId":%d,"registered_at":1700000000}' \
		$((poll * 60000)) "$net" "$ver" "$uuid" "$id" > "$out"
	;;
*)
	die "command $1 not found"
	;;
esac
`

// fakeCLI writes the stand-in into a fresh directory with the given
// fleets and returns its path.
func fakeCLI(t *testing.T, apps ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "balena")
	if err := os.WriteFile(bin, []byte(standIn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "apps"), []byte(strings.Join(apps, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin
}

// control writes a steering file next to the stand-in.
func control(t *testing.T, bin, name, content string) {
	t.Helper()
	p := filepath.Join(filepath.Dir(bin), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// argv returns the stand-in's recorded command lines.
func argv(t *testing.T, bin string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(bin), "argv.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
