package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/remote/upload"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/fleetmig/balena-migrate/internal/worker"
)

// archNames maps `uname -m` to the suffix of per-architecture binaries.
func archNames() map[string]string {
	return map[string]string{
		"x86_64": "amd64", "amd64": "amd64",
		"i386": "386", "i486": "386", "i586": "386", "i686": "386",
		"armv7l": "armv7", "armv6l": "armv6",
		"aarch64": "arm64", "arm64": "arm64", "armv8l": "armv7",
	}
}

// binary picks the balena-migrate to run: balena-migrate-<arch> for the
// device's architecture when the environment has such files.
func (j *job) binary(ctx context.Context, dev Device, files map[string]bool) (string, error) {
	if !hasPerArch(files) {
		if !files["balena-migrate"] {
			return "", usage.Errorf("the migration environment has no balena-migrate")
		}
		return "./balena-migrate", nil
	}
	m, err := dev.Arch(ctx)
	if err != nil {
		return "", fmt.Errorf("asking the device for its architecture: %w", err)
	}
	if a, ok := archNames()[m]; ok && files["balena-migrate-"+a] {
		j.step("device architecture %s: using balena-migrate-%s", m, a)
		return "./balena-migrate-" + a, nil
	}
	if files["balena-migrate"] {
		j.warn("no balena-migrate-<arch> for device architecture %s: using balena-migrate", m)
		return "./balena-migrate", nil
	}
	return "", &DeviceError{Class: unit.FailStage1, Msg: fmt.Sprintf("no balena-migrate binary for device architecture %s in the migration environment", m)}
}

// hasPerArch reports whether files hold balena-migrate-<arch> binaries.
func hasPerArch(files map[string]bool) bool {
	for _, a := range archNames() {
		if files["balena-migrate-"+a] {
			return true
		}
	}
	return false
}

// topFiles lists the top-level file names of a migration environment.
func topFiles(ctx context.Context, src *upload.Source) (map[string]bool, error) {
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
	src, err := j.source(j.s.Unit.Env())
	if err != nil {
		return j.fail(unit.FailConfigError, err.Error()), false
	}
	files, err := topFiles(ctx, src)
	if err != nil {
		return j.fail(unit.FailConfigError, err.Error()), false
	}
	bin, err := j.binary(ctx, dev, files)
	if err != nil {
		return j.deviceTrouble(ctx, "choosing balena-migrate", err), false
	}
	timeout := j.s.Migrate.ExecTimeout
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
	wait := j.s.Migrate.Duration
	j.u.SetDue(j.now.Add(wait))
	return worker.Outcome{To: spool.Process, Unit: j.u,
		Msg: fmt.Sprintf("migrated: device %s will be looked for in balena in %v", j.u.Get(unit.FieldDeviceID), wait)}
}
