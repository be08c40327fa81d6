package stage1

import (
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
	if d.Family != devicetype.FamilyRaspberryPi {
		return false
	}
	for _, s := range d.Slugs {
		if slices.Contains([]string{"raspberrypi4-64", "raspberrypi400-64", "raspberrypicm4-ioboard", "raspberrypi5"}, s) {
			return true
		}
	}
	return false
}

// piConfig renders config.txt (or tryboot.txt from it) with lines appended
// under [all], so that no earlier conditional section ([pi4], [cm5], ...)
// hides them. Other initramfs lines and auto_initramfs are disabled, and a
// cmdline= line is disabled when lines set one.
func piConfig(s string, lines ...string) string {
	setsCmdline := slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "cmdline=") })
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "initramfs ") || strings.HasPrefix(t, "auto_initramfs") || setsCmdline && strings.HasPrefix(t, "cmdline=") {
			l = "#balena-migrate# " + l
		}
		out = append(out, l)
	}
	return strings.Join(append(append(out, "", "[all]"), lines...), "\n") + "\n"
}

// setupTryboot writes tryboot.txt: config.txt's content with the initramfs
// line (and, for DEBUG, a command line file of its own).
func (r *run) setupTryboot(p bootPlan, line string) error {
	cfg, err := r.read(filepath.Join(p.dir, "config.txt"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	lines := []string{line}
	written := []string{p.initrd}
	if r.cfg.Debug {
		cmdline, err := r.read(filepath.Join(p.dir, "cmdline.txt"))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		name := filepath.Join(p.dir, trybootCmdline)
		if err := r.journal.Write(name, []byte(addDebug(string(cmdline))), 0o644); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		lines = append(lines, "cmdline="+trybootCmdline)
		written = append(written, name)
	}
	tb := filepath.Join(p.dir, trybootFile)
	if err := r.journal.Write(tb, []byte(piConfig(string(cfg), lines...)), 0o644); err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	// On FAT a file written but not synced may come back empty or missing.
	if err := r.durable(append(written, tb)...); err != nil {
		return err
	}
	r.log.Info("%s: %s; config.txt and cmdline.txt unchanged: only a `%s` boots stage 2, any other boot the old system", tb, strings.Join(lines, ", "), TrybootReboot)
	return nil
}
