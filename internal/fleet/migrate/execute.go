package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote/upload"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
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
func (j *job) binary(files map[string]bool) (string, error) {
	if !hasPerArch(files) {
		if !files["balena-migrate"] {
			return "", usage.Errorf("the migration environment %s has no balena-migrate", j.env.path)
		}
		return "./balena-migrate", nil
	}
	m := j.probe.machine
	if a, ok := archNames()[m]; ok && files["balena-migrate-"+a] {
		return "./balena-migrate-" + a, nil
	}
	if files["balena-migrate"] {
		j.warn("no balena-migrate-<arch> for device architecture %s: using balena-migrate", m)
		return "./balena-migrate", nil
	}
	return "", &DeviceError{Class: devproto.ClassDeviceType, Msg: fmt.Sprintf("no balena-migrate binary for device architecture %s in %s", m, j.env.path)}
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

// preflight runs balena-migrate --pretend: every check of stage 1, the
// backup and the initramfs, but no change to the boot setup. Nothing is
// registered before it passes.
func (j *job) preflight(ctx context.Context, dev Device) (worker.Outcome, bool) {
	if err := j.sendEndpoints(ctx, dev); err != nil {
		return j.deviceTrouble(ctx, "sending the fleet's endpoints", err), false
	}
	o, ok := j.stage1(ctx, dev, "pre-flight", "--pretend")
	if !ok && j.s.Migrate.Pretend && o.To == spool.Fail && j.u.Get(unit.FieldFailClass) != string(devproto.ClassConfigError) {
		// A pre-flight run records the device's refusal and hands the
		// unit back: the refusal is what the operator asked to learn.
		msg := j.u.Get(unit.FieldFailMsg)
		j.u.ClearFail()
		j.u.SetResult(unit.FieldPreflight, false, msg, j.now)
		return worker.Outcome{To: spool.Units, Unit: j.u, Msg: "pre-flight failed: " + msg}, false
	}
	return o, ok
}

// execute runs stage 1 for real. STAGE1_TS and the boot id are saved
// first: from here on the device may be on its way to balenaOS, and a
// later attempt must look before it migrates again.
func (j *job) execute(ctx context.Context, dev Device) (worker.Outcome, bool) {
	j.u.Set(unit.FieldStage1TS, strconv.FormatInt(j.now.Unix(), 10))
	if j.probe.bootID != "" {
		j.u.Set(unit.FieldBootID, j.probe.bootID)
	}
	if err := j.save(j.u); err != nil {
		return worker.HandBack("cannot save the unit before stage 1: " + err.Error()), false
	}
	// A stage-2 log left by an earlier attempt would be taken for this one's.
	if _, err := dev.Output(ctx, "rm -f "+devproto.Stage2LogPath, nil); err != nil {
		return j.deviceTrouble(ctx, "removing an old stage-2 log", err), false
	}
	args := []string{"--reboot", "10", "--balena-cfg", devproto.BalenaConfigName}
	if j.s.Migrate.Rehearsal {
		args = []string{"--reboot", "10"}
	}
	return j.stage1(ctx, dev, "stage 1", args...)
}

// stage1 runs balena-migrate with args on the device and reads its verdict.
func (j *job) stage1(ctx context.Context, dev Device, what string, args ...string) (worker.Outcome, bool) {
	files, err := topFiles(ctx, j.env.src)
	if err != nil {
		return j.fail(devproto.ClassConfigError, err.Error()), false
	}
	bin, err := j.binary(files)
	if err != nil {
		return j.deviceTrouble(ctx, "choosing balena-migrate", err), false
	}
	timeout := j.s.Migrate.ExecTimeout
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append([]string{bin}, args...)
	j.step("%s: running %s on the device (limit %v)", what, strings.Join(argv, " "), timeout)
	out := &verdict{ulog: j.ulog, log: j.log}
	code, err := dev.RunAsRoot(ectx, devproto.Dir, argv, out, out)
	out.flush()
	j.reboot, j.rebootArg = out.reboot()
	var msg string
	switch {
	case stopped(ctx):
		return worker.HandBack("worker stopping"), false
	case out.success != nil && (err == nil && code == 0 || err != nil && out.sawEnd):
		// A connection lost after the success line is the device rebooting.
		j.step("%s passed", what)
		return worker.Outcome{}, true
	case errors.Is(ectx.Err(), context.DeadlineExceeded):
		msg = fmt.Sprintf("balena-migrate did not finish within MIG_EXEC_TIMEOUT=%v; last output: %s", timeout, out.last())
	case err != nil:
		msg = fmt.Sprintf("balena-migrate: %v; last output: %s", err, out.last())
	case code != 0:
		msg = fmt.Sprintf("balena-migrate exited %d: %s", code, out.last())
	default:
		msg = "balena-migrate ended without saying that it succeeded: " + out.last()
	}
	class, why := out.failure()
	return j.fail(class, what+": "+msg+why), false
}

// finish ends a run that passed every step, as the mode says.
func (j *job) finish(ctx context.Context, dev Device) worker.Outcome {
	j.now = j.Now()
	switch {
	case j.s.Migrate.Pretend:
		msg := fmt.Sprintf("pre-flight passed: %s, %s, device type %s", j.probe.device.Name, j.probe.osName(), orDefault(j.env.slug, "the fleet's default"))
		j.u.SetResult(unit.FieldPreflight, true, msg, j.now)
		return worker.Outcome{To: spool.Units, Unit: j.u, Msg: msg + "; nothing registered, no reboot"}
	case j.s.Migrate.Rehearsal:
		j.rebootDevice(ctx, dev)
		j.u.SetStatus(unit.StatusRehearsing, j.now)
		wait := j.s.Migrate.Duration
		j.u.SetDue(j.now.Add(wait))
		return worker.Outcome{To: spool.Process, Unit: j.u,
			Msg: fmt.Sprintf("rehearsal: stage 1 done, nothing registered; migdb-check-done looks for the device back on its old system in %v", wait)}
	}
	j.progress(ctx, "reboot")
	j.rebootDevice(ctx, dev)
	return j.migrated()
}

// rebootDevice reboots the device when balena-migrate asked for it.
func (j *job) rebootDevice(ctx context.Context, dev Device) {
	if !j.reboot {
		return
	}
	argv := []string{"reboot"}
	if a := j.rebootArg; a != "" {
		// A Raspberry Pi with tryboot boots stage 2 only from
		// `reboot "0 tryboot"`; a plain reboot would boot the old system.
		if !safeRebootArg(a) {
			j.warn("balena-migrate asks for a reboot with the argument %q, which is not passed on: reboot the device by hand with it to finish the migration", a)
			return
		}
		argv = append(argv, a)
	}
	j.step("balena-migrate asks for a reboot: rebooting the device (%s)", strings.Join(argv, " "))
	if err := dev.StartDetachedAsRoot(ctx, argv); err != nil {
		j.warn("could not reboot the device (%v): reboot it by hand to finish the migration", err)
	}
}

// migrated hands the unit to migdb-check-done.
func (j *job) migrated() worker.Outcome {
	j.now = j.Now()
	j.u.SetStatus(unit.StatusMigrated, j.now)
	wait := j.s.Migrate.Duration
	j.u.SetDue(j.now.Add(wait))
	return worker.Outcome{To: spool.Process, Unit: j.u,
		Msg: fmt.Sprintf("migrated: device %s will be looked for in balena in %v", j.u.Get(unit.FieldDeviceID), wait)}
}

// alreadyOnline spares a device that stage 1 already ran on (the worker
// died, or the time limit hit while stage 1 went on): when balena says the
// device is online, the unit moves on without touching the device.
func (j *job) alreadyOnline(ctx context.Context) (worker.Outcome, bool) {
	uuid := j.u.Get(unit.FieldDeviceID)
	if j.u.Get(unit.FieldStage1TS) == "" || !balena.ValidUUID(uuid) || j.s.Migrate.Pretend || j.s.Migrate.Rehearsal {
		return worker.Outcome{}, false
	}
	online, err := j.Cloud.IsOnline(ctx, uuid)
	if err != nil || !online {
		return worker.Outcome{}, false
	}
	j.step("device %s is already online in balena after an earlier run of stage 1: not touching it again", uuid)
	return j.migrated(), true
}
