package stage1

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
)

// The Raspberry Pi 4, 400, CM4 and 5 firmware has a one-shot boot: a
// reboot with the argument "0 tryboot" sets a flag that the boot loader
// clears as it reads it, and makes the firmware read tryboot.txt instead of
// config.txt for that one boot. Stage 1 puts its initramfs into tryboot.txt
// only and leaves config.txt and cmdline.txt alone, so any reset after a
// failed first boot (a hang, a power cut) boots the old system unchanged.

// trybootFile is the firmware's config file of a tryboot boot.
const trybootFile = "tryboot.txt"

// trybootCmdline is the kernel command line file tryboot.txt names when
// stage 2 needs another command line (DEBUG); cmdline.txt stays as it is.
const trybootCmdline = "balena-migrate-cmdline.txt"

// TrybootArg is the reboot argument that starts the one-shot tryboot boot.
const TrybootArg = "0 tryboot"

// TrybootReboot is the reboot command that starts the one-shot tryboot boot.
const TrybootReboot = `reboot "` + TrybootArg + `"`

// hasTryboot says whether the board's firmware has the tryboot flag: the
// BCM2711 boards (Pi 4, 400, CM4) and the BCM2712 ones (Pi 5, 500, CM5).
// Older boards read only config.txt.
func hasTryboot(d devicetype.Device) bool {
	for _, s := range d.Slugs {
		if slices.Contains([]string{"raspberrypi4-64", "raspberrypi400-64", "raspberrypicm4-ioboard", "raspberrypi5"}, s) {
			return true
		}
	}
	return false
}

// piTrybootBoot writes tryboot.txt and has stage 2 booted by a tryboot reboot.
type piTrybootBoot struct{}

var _ bootSetup = piTrybootBoot{}

// plan: config.txt and cmdline.txt must be there (tryboot.txt is made from
// config.txt), but nothing is changed that stage 2 would have to put back,
// except a tryboot.txt of the operator's own (one of an earlier run is ours).
func (piTrybootBoot) plan(e bootEnv) (bootPlan, error) {
	p := e.newPlan()
	if err := piNotSetUp(e, p.dir); err != nil {
		return p, err
	}
	p.rebootArg = TrybootArg
	for _, f := range []string{"config.txt", "cmdline.txt"} {
		if !e.exists(filepath.Join(p.dir, f)) {
			return p, fmt.Errorf("%w: %s is missing: this does not look like a raspberrypi boot partition", ErrBootSetup, filepath.Join(p.dir, f))
		}
	}
	tb := filepath.Join(p.dir, trybootFile)
	if data, err := e.read(tb); err == nil && !strings.Contains(string(data), "balena-migrate-initramfs") {
		if err := e.backUp(&p, "raspberrypi", trybootFile); err != nil {
			return p, err
		}
	} else {
		// ours, read once by the firmware: the stage-2 boot removes it
		// so that no later tryboot starts stage 2 again
		p.added = append(p.added, tb)
	}
	if e.cfg.Debug {
		p.added = append(p.added, filepath.Join(p.dir, trybootCmdline))
	}
	return p, nil
}

// apply writes tryboot.txt: config.txt's content with the initramfs line
// (and, for DEBUG, a command line file of its own).
func (piTrybootBoot) apply(_ context.Context, e bootEnv, p bootPlan) error {
	cfg, err := e.read(filepath.Join(p.dir, "config.txt"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	lines := []string{piInitramfsLine(p)}
	written := []string{p.initrd}
	if e.cfg.Debug {
		cmdline, err := e.read(filepath.Join(p.dir, "cmdline.txt"))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		name := filepath.Join(p.dir, trybootCmdline)
		if err := e.journal.Write(name, []byte(addDebug(string(cmdline))), 0o644); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		lines = append(lines, "cmdline="+trybootCmdline)
		written = append(written, name)
	}
	tb := filepath.Join(p.dir, trybootFile)
	if err := e.journal.Write(tb, []byte(piConfig(string(cfg), lines...)), 0o644); err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	// On FAT a file written but not synced may come back empty or missing.
	if err := e.durable(append(written, tb)...); err != nil {
		return err
	}
	e.log.Info("%s: %s; config.txt and cmdline.txt unchanged: only a `%s` boots stage 2, any other boot the old system", tb, strings.Join(lines, ", "), TrybootReboot)
	return nil
}

// undo: stage 2 removes tryboot.txt (and the command line file), or puts
// back the operator's own tryboot.txt. config.txt was never changed.
func (piTrybootBoot) undo(p bootPlan) bootUndo { return p.putBack() }
