package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/remote"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
	"github.com/fleetmig/balena-migrate/internal/worker"
	"github.com/rs/zerolog"
)

// The words of balena-migrate's last line (SPEC §9) that decide success.
const (
	successWords = "migration successful"
	rebootWords  = "please reboot system"
)

// sendConfig builds the device's config.json and puts it next to
// balena-migrate on the device.
func (j *job) sendConfig(ctx context.Context, dev Device) (worker.Outcome, bool) {
	uuid := j.u.Get(unit.FieldDeviceID)
	ver := j.s.String(config.BalenaVer)
	j.step("generating config.json for balenaOS %s", ver)
	data, err := j.Cloud.DeviceConfig(ctx, j.s.String(config.App), uuid, ver)
	if err != nil {
		return j.cloudTrouble(unit.FailConfig, "generating config.json", err), false
	}
	var cfg struct {
		UUID         string `json:"uuid"`
		DeviceAPIKey string `json:"deviceApiKey"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.UUID != uuid || cfg.DeviceAPIKey == "" {
		return j.fail(unit.FailConfig, fmt.Sprintf("config.json from balena does not carry device %s and its key (uuid %q)", uuid, cfg.UUID)), false
	}
	if err := dev.WriteFile(ctx, path.Join(RemoteDir, ConfigName), data, 0o600); err != nil {
		return j.deviceTrouble(ctx, "sending config.json", err), false
	}
	j.step("config.json for %s sent to %s/%s", uuid, RemoteDir, ConfigName)
	return worker.Outcome{}, true
}

// archNames maps `uname -m` to the suffix of per-architecture binaries.
var archNames = map[string]string{
	"x86_64": "amd64", "amd64": "amd64",
	"i386": "386", "i486": "386", "i586": "386", "i686": "386",
	"armv7l": "armv7", "armv6l": "armv6",
	"aarch64": "arm64", "arm64": "arm64", "armv8l": "armv7",
}

// binary picks the balena-migrate to run: balena-migrate-<arch> for the
// device's architecture when the environment has such files.
func (j *job) binary(ctx context.Context, dev Device, files map[string]bool) (string, error) {
	if !hasPerArch(files) {
		if !files["balena-migrate"] {
			return "", errors.New("the migration environment has no balena-migrate")
		}
		return "./balena-migrate", nil
	}
	m, err := dev.Arch(ctx)
	if err != nil {
		return "", fmt.Errorf("asking the device for its architecture: %w", err)
	}
	if a, ok := archNames[m]; ok && files["balena-migrate-"+a] {
		j.step("device architecture %s: using balena-migrate-%s", m, a)
		return "./balena-migrate-" + a, nil
	}
	if files["balena-migrate"] {
		j.warn("no balena-migrate-<arch> for device architecture %s: using balena-migrate", m)
		return "./balena-migrate", nil
	}
	return "", fmt.Errorf("no balena-migrate binary for device architecture %s in the migration environment", m)
}

// hasPerArch reports whether files hold balena-migrate-<arch> binaries.
func hasPerArch(files map[string]bool) bool {
	for _, a := range archNames {
		if files["balena-migrate-"+a] {
			return true
		}
	}
	return false
}

// topFiles lists the top-level file names of a migration environment.
func topFiles(ctx context.Context, src *remote.Source) (map[string]bool, error) {
	entries, err := src.Entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration environment %s: %w", src, err)
	}
	files := map[string]bool{}
	for _, e := range entries {
		if e.Mode.IsRegular() && !strings.Contains(e.Path, "/") {
			files[e.Path] = true
		}
	}
	return files, nil
}

// execute runs balena-migrate on the device and reads its verdict.
func (j *job) execute(ctx context.Context, dev Device) (worker.Outcome, bool) {
	src, err := j.source(envPath(j.s))
	if err != nil {
		return j.fail(unit.FailConfigError, err.Error()), false
	}
	files, err := topFiles(ctx, src)
	if err != nil {
		return j.fail(unit.FailConfigError, err.Error()), false
	}
	bin, err := j.binary(ctx, dev, files)
	if err != nil {
		if remote.Class(err) != "other" && remote.Class(err) != "" {
			return j.deviceTrouble(ctx, "asking the device's architecture", err), false
		}
		return j.fail(unit.FailStage1, err.Error()), false
	}
	timeout := j.s.Duration(config.ExecTimeout)
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := []string{bin, "--reboot", "10", "--balena-cfg", ConfigName}
	j.step("running %s on the device (limit %v)", strings.Join(argv, " "), timeout)
	out := &verdict{ulog: j.ulog, log: j.log}
	code, err := dev.RunAsRoot(ectx, RemoteDir, argv, out, out)
	out.flush()
	j.reboot = out.reboot
	switch {
	case stopped(ctx):
		return worker.HandBack("worker stopping"), false
	case out.success && (err == nil && code == 0 || err != nil && out.sawEnd):
		// A connection lost after the success line is the device rebooting.
		return worker.Outcome{}, true
	case errors.Is(ectx.Err(), context.DeadlineExceeded):
		return j.fail(out.class(), fmt.Sprintf("balena-migrate did not finish within MIG_EXEC_TIMEOUT=%v; last output: %s", timeout, out.last())), false
	case err != nil:
		return j.fail(out.class(), fmt.Sprintf("balena-migrate: %v; last output: %s", err, out.last())), false
	case code != 0:
		return j.fail(out.class(), fmt.Sprintf("balena-migrate exited %d: %s", code, out.last())), false
	}
	return j.fail(out.class(), "balena-migrate ended without saying \"migration successful\": "+out.last()), false
}

// migrated ends a successful run: reboot when asked, then process/.
func (j *job) migrated(ctx context.Context, dev Device) worker.Outcome {
	if j.reboot {
		j.step("balena-migrate asks for a reboot: rebooting the device")
		if err := dev.StartDetachedAsRoot(ctx, []string{"reboot"}); err != nil {
			j.warn("could not reboot the device (%v): reboot it by hand to finish the migration", err)
		}
	}
	j.now = j.Now()
	j.u.SetStatus(unit.StatusMigrated, j.now)
	wait := j.s.Duration(config.Duration)
	j.u.SetDue(j.now.Add(wait))
	return worker.Outcome{To: spool.Process, Unit: j.u,
		Msg: fmt.Sprintf("migrated: device %s will be looked for in balena in %v", j.u.Get(unit.FieldDeviceID), wait)}
}

// verdict receives balena-migrate's output: every line to the unit log,
// WARN/ERROR lines echoed to the worker log, and what decides the outcome.
type verdict struct {
	mu      sync.Mutex
	ulog    interface{ Write([]byte) (int, error) }
	log     zerolog.Logger
	partial []byte
	tail    []string // last lines, for FAIL_MSG
	errs    []string // ERROR lines
	success bool
	reboot  bool
	sawEnd  bool // the success line was the last thing seen
}

func (v *verdict) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ulog.Write(p)
	v.partial = append(v.partial, p...)
	for {
		i := bytes.IndexByte(v.partial, '\n')
		if i < 0 {
			break
		}
		v.line(strings.TrimRight(string(v.partial[:i]), "\r"))
		v.partial = v.partial[i+1:]
	}
	return len(p), nil
}

func (v *verdict) flush() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.partial) > 0 {
		v.line(string(v.partial))
		v.partial = nil
	}
}

func (v *verdict) line(l string) {
	if strings.TrimSpace(l) == "" {
		return
	}
	v.sawEnd = false
	switch {
	case strings.Contains(l, "ERROR"):
		v.errs = append(v.errs, l)
		v.log.Error().Str("device", l).Msg("device says")
	case strings.Contains(l, "WARN"):
		v.log.Warn().Str("device", l).Msg("device says")
	}
	if strings.Contains(l, successWords) {
		v.success, v.sawEnd = true, true
		v.reboot = strings.Contains(l, rebootWords)
	}
	v.tail = append(v.tail, l)
	if len(v.tail) > 5 {
		v.tail = v.tail[1:]
	}
}

// last is the most telling output: the ERROR lines, else the last lines.
func (v *verdict) last() string {
	lines := v.errs
	if len(lines) == 0 {
		lines = v.tail
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, " | ")
}

// class reads the failure class from what the device said.
func (v *verdict) class() unit.FailClass {
	text := strings.ToLower(strings.Join(append(append([]string{}, v.errs...), v.tail...), "\n"))
	switch {
	case strings.Contains(text, "no space") || strings.Contains(text, "not enough space") || strings.Contains(text, "insufficient space"):
		return unit.FailNoSpace
	case strings.Contains(text, "read-only"):
		return unit.FailReadOnly
	case strings.Contains(text, "backup"):
		return unit.FailBackup
	}
	return unit.FailStage1
}
