package migrate

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// probeScript collects, in one SSH command and before anything is
// uploaded, what decides whether and how a device can be migrated: its
// board (devicetype.Probe), its OS, whether it already runs balenaOS, the
// free space where the environment goes and the space already used there,
// and its boot id (which changes at every boot).
const probeScript = devicetype.Probe + `; printf '\n@@fleet\n@os\n'; cat /etc/os-release 2>/dev/null; ` +
	`printf '@balena\n'; [ -e /etc/balena-release ] || [ -e /etc/resin-release ] || grep -qs '^ID="\?balena-os' /etc/os-release && echo yes; ` +
	`printf '@free_kb\n'; df -Pk . 2>/dev/null | awk 'NR==2 {print $4}'; ` +
	`printf '@used_kb\n'; du -sk ` + devproto.Dir + ` 2>/dev/null | awk '{print $1}'; ` +
	`printf '@boot_id\n'; cat /proc/sys/kernel/random/boot_id 2>/dev/null; true`

// probe is what the probe found.
type probe struct {
	device  devicetype.Device
	os      map[string]string // /etc/os-release
	balena  bool              // already runs balenaOS
	freeKB  int64             // -1 when unknown
	usedKB  int64             // already in devproto.Dir
	bootID  string
	machine string // uname -m
}

// parseProbe reads probeScript's output. A board this tool cannot migrate
// is a *DeviceError of class device_type.
func parseProbe(out string) (probe, error) {
	board, fleet, _ := strings.Cut(out, "\n@@fleet\n")
	in := devicetype.ParseProbe(board)
	p := probe{os: map[string]string{}, freeKB: -1, machine: in.Machine}
	sections := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(fleet))
	for sc.Scan() {
		l := sc.Text()
		if name, ok := strings.CutPrefix(l, "@"); ok && !strings.Contains(name, " ") && name != "" {
			cur = name
			continue
		}
		if cur != "" && strings.TrimSpace(l) != "" {
			sections[cur] = append(sections[cur], strings.TrimSpace(l))
		}
	}
	for _, l := range sections["os"] {
		if k, v, ok := strings.Cut(l, "="); ok {
			p.os[k] = strings.Trim(v, `"'`)
		}
	}
	first := func(k string) string {
		if v := sections[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	p.balena = first("balena") == "yes"
	if n, err := strconv.ParseInt(first("free_kb"), 10, 64); err == nil {
		p.freeKB = n
	}
	p.usedKB, _ = strconv.ParseInt(first("used_kb"), 10, 64)
	p.bootID = first("boot_id")
	if p.balena {
		return p, nil
	}
	d, err := devicetype.Detect(in)
	if err != nil {
		return p, &DeviceError{Class: devproto.ClassDeviceType, Msg: err.Error()}
	}
	p.device = d
	return p, nil
}

// osName is the OS for messages: "debian 12", "raspbian 11".
func (p probe) osName() string {
	if p.os["ID"] == "" {
		return "an unknown OS (no /etc/os-release)"
	}
	return strings.TrimSpace(p.os["ID"] + " " + p.os["VERSION_ID"])
}

// checkOS refuses, before anything is uploaded, a device whose OS cannot
// be migrated by any version of stage 1: one without /etc/os-release, or
// outside the Debian family (stage 1 builds its initramfs with Debian's
// initramfs-tools). Which releases are supported is stage 1's decision,
// made on the device in the pre-flight.
func (p probe) checkOS() error {
	if p.balena {
		return &DeviceError{Class: devproto.ClassAlreadyBalena, Msg: "the device already runs balenaOS: it is not migrated again"}
	}
	id := p.os["ID"]
	family := " " + id + " " + p.os["ID_LIKE"] + " "
	if id == "" || !strings.Contains(family, " debian ") && !strings.Contains(family, " ubuntu ") && !strings.Contains(family, " raspbian ") {
		return &DeviceError{Class: devproto.ClassOS, Msg: fmt.Sprintf("the device runs %s: balena-migrate migrates Debian, Ubuntu and Raspberry Pi OS systems", p.osName())}
	}
	return nil
}

// checkSpace refuses a device without room for the environment.
func (p probe) checkSpace(needBytes int64) error {
	if p.freeKB < 0 {
		return nil // df gave nothing; stage 1 checks space itself
	}
	need := needBytes/1024 - p.usedKB
	if margin := need / 20; need > 0 && p.freeKB < need+margin {
		return &DeviceError{Class: devproto.ClassNoSpace, Msg: fmt.Sprintf("the device has %d MB free in its home directory; the migration environment needs %d MB more", p.freeKB/1024, (need+margin)/1024+1)}
	}
	return nil
}

// probeDevice is the first step on the device: it refuses, before anything
// is uploaded or registered, a device that cannot be migrated, and picks
// the device's environment.
func (j *job) probeDevice(ctx context.Context, dev Device) (worker.Outcome, bool) {
	out, err := dev.Output(ctx, probeScript, nil)
	if err != nil {
		return j.deviceTrouble(ctx, "probing the device", err), false
	}
	p, err := parseProbe(string(out))
	if err == nil {
		err = p.checkOS()
	}
	if p.balena && j.u.Get(unit.FieldStage1TS) != "" && balena.ValidUUID(j.u.Get(unit.FieldDeviceID)) {
		// Our own migration got this far while the worker was away.
		j.step("the device already runs balenaOS after an earlier run of stage 1: waiting for it in balena")
		return j.migrated(), false
	}
	if err != nil {
		return j.deviceTrouble(ctx, "probing the device", err), false
	}
	j.probe = p
	j.step("device: %s, %s, %d MB free; balena device types %s", p.device.Name, p.osName(), p.freeKB/1024, strings.Join(p.device.Slugs, ", "))
	env, err := j.chooseEnvironment(ctx, p)
	if err != nil {
		return j.deviceTrouble(ctx, "choosing the migration environment", err), false
	}
	j.env = env
	j.step("migration environment %s (%s), device type %s", env.path, env.why, orDefault(env.slug, "the fleet's default"))
	if err := j.checkMode(); err != nil {
		return j.deviceTrouble(ctx, "checking the migration environment", err), false
	}
	if err := p.checkSpace(env.size); err != nil {
		return j.deviceTrouble(ctx, "checking space", err), false
	}
	return worker.Outcome{}, true
}

// checkMode refuses an environment that does not fit the worker's mode.
func (j *job) checkMode() error { return modeMismatch(j.s.Migrate, j.env) }

// modeMismatch refuses an environment whose stage 2 would not flash in a
// real run (it would register a device that never comes online, a ghost in
// balena), and one that would flash in a rehearsal.
func modeMismatch(m config.MigrateTuning, env environment) error {
	switch {
	case m.Pretend:
	case m.Rehearsal && env.noFlashSays == "":
		return usage.Errorf("this is a rehearsal (--rehearsal), but %s has no %s: stage 1 needs one (IMAGE_NAME=..., NO_FLASH=TRUE)", env.path, devproto.ConfName)
	case m.Rehearsal && !env.noFlash:
		return usage.Errorf("this is a rehearsal (--rehearsal), but %s in %s %s, so stage 2 would flash: set NO_FLASH=TRUE (or leave it out) to rehearse", devproto.ConfName, env.path, env.noFlashSays)
	case !m.Rehearsal && env.noFlash:
		return usage.Errorf("%s in %s %s, so stage 2 would not flash: run migdb-migrate --rehearsal to rehearse, or set NO_FLASH=FALSE to migrate", devproto.ConfName, env.path, env.noFlashSays)
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
