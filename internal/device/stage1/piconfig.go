package stage1

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// A Raspberry Pi's firmware reads config.txt from the boot partition; its
// `initramfs <file> followkernel` line names the initramfs the kernel gets.
// Without tryboot (tryboot.go) stage 1 adds that line to config.txt itself,
// after timestamped backups of config.txt and cmdline.txt that stage 2 puts
// back: until then every boot starts stage 2.

// piConfigBoot edits config.txt (and cmdline.txt for DEBUG).
type piConfigBoot struct{}

var _ bootSetup = piConfigBoot{}

func (piConfigBoot) plan(e bootEnv) (bootPlan, error) {
	p := e.newPlan()
	if err := piNotSetUp(e, p.dir); err != nil {
		return p, err
	}
	return p, e.backUp(&p, "raspberrypi", "config.txt", "cmdline.txt")
}

// apply adds the initramfs line to config.txt (disabling other initramfs
// lines) and `debug` to cmdline.txt when DEBUG.
func (piConfigBoot) apply(_ context.Context, e bootEnv, p bootPlan) error {
	line := piInitramfsLine(p)
	if err := e.editFile(filepath.Join(p.dir, "config.txt"), func(s string) string {
		return piConfig(s, line)
	}); err != nil {
		return err
	}
	e.log.Info("%s/config.txt: %s", p.dir, line)
	if e.cfg.Debug {
		return e.editFile(filepath.Join(p.dir, "cmdline.txt"), addDebug)
	}
	return nil
}

// undo: stage 2 copies config.txt and cmdline.txt back from the backups.
func (piConfigBoot) undo(p bootPlan) bootUndo { return p.putBack() }

// piNotSetUp refuses a config.txt an earlier run already pointed at our
// initramfs: its backups would restore our change, not the original.
func piNotSetUp(e bootEnv, dir string) error {
	data, _ := e.read(filepath.Join(dir, "config.txt"))
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "initramfs ") && strings.Contains(t, "balena-migrate-initramfs") {
			return fmt.Errorf("%w: %s/config.txt already boots %s from an earlier run: put back config.txt and cmdline.txt from their timestamped backups in %s, then try again",
				ErrBootSetup, dir, strings.Fields(t)[1], dir)
		}
	}
	return nil
}

// piInitramfsLine is the config.txt line that boots our initramfs.
func piInitramfsLine(p bootPlan) string {
	return fmt.Sprintf("initramfs %s followkernel", filepath.Base(p.initrd))
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

// addDebug adds `debug` to a kernel command line that lacks it.
func addDebug(cmdline string) string {
	t := strings.TrimSpace(cmdline)
	for _, f := range strings.Fields(t) {
		if f == "debug" {
			return cmdline
		}
	}
	return t + " debug\n"
}
