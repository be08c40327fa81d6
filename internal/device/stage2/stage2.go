// Package stage2 is `balena-migrate stage2`: it runs inside the initramfs
// after the old root is mounted, secures the image and files in RAM, verifies
// the image, and only then unmounts the old root and flashes balenaOS (docs/device.md,
// stage 2). Until the old root is unmounted every failure leaves the disk as it
// was and hands back to the old system (TERM_EXIT); after that point the only
// way out is forward: a failure reboots (`reboot -f`).
package stage2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/devproto"
)

// Options are the command-line switches of stage 2.
type Options struct {
	// NoReboot never reboots: Run returns its result instead (tests, dry runs).
	NoReboot bool
	// Console receives the log lines.
	Console io.Writer
}

// run carries the state of one stage-2 run.
type run struct {
	cfg   s2config.Config
	opts  Options
	log   *Logger
	files staged // what was copied into MIGRATE_TMP
	// mounted is set while resin-boot and resin-data are mounted.
	mounted bool
	// logDrive is set while LOG_DRIVE is mounted.
	logDrive bool
	// guard is set while stage 2 feeds the watchdog.
	guard *guard
	// efiLoader is the EFI loader found on resin-boot ("" for none).
	efiLoader string
	// retryWait is the first wait between attempts of a step after the
	// point of no return (defaultRetryWait when 0).
	retryWait time.Duration
}

// Stopped is Run's result when NO_FLASH stopped it before flashing, as
// asked, and TERM_EXIT says "exit N" with N > 0: not a failure, but the
// exit code the operator chose (exitcode.Coder).
type Stopped struct{ Code int }

func (s *Stopped) Error() string {
	return fmt.Sprintf("%v; TERM_EXIT=\"exit %d\"", devproto.ErrNoFlash, s.Code)
}
func (s *Stopped) Unwrap() error { return devproto.ErrNoFlash }
func (s *Stopped) ExitCode() int { return s.Code }

// Run executes stage 2. It returns nil when balenaOS is installed, or when
// NO_FLASH stopped it and TERM_EXIT says "exit 0"; a *Stopped when
// TERM_EXIT says another code; else the error that stopped it, before the
// point of no return or after it. Unless opts.NoReboot, it reboots where
// docs/device.md says so and only returns if the reboot fails.
func Run(ctx context.Context, cfg s2config.Config, opts Options) error {
	r := &run{cfg: cfg, opts: opts, log: NewLogger(opts.Console)}
	r.log.Infof("stage 2 starting: flashing %s onto %s", cfg.ImageFile, cfg.BootDev)
	r.takeOverWatchdog(ctx)
	if err := r.beforePointOfNoReturn(ctx); err != nil {
		return r.termExit(err)
	}
	r.watchdogPastPointOfNoReturn()
	r.log.Infof("old root unmounted: point of no return passed")
	err := r.afterPointOfNoReturn(ctx)
	if err != nil {
		r.log.Errorf("%v", err)
		r.log.Errorf("stage 2 failed after flashing started; rebooting")
		err = fmt.Errorf("after flashing started: %w", err)
	} else {
		r.log.Infof("balenaOS installed on %s", r.cfg.BootDev)
	}
	r.closeNew()
	return r.finish(err)
}

func (r *run) beforePointOfNoReturn(ctx context.Context) error {
	r.restoreBootFiles()
	r.setupLogDrive()
	if err := r.findBootDev(); err != nil {
		return err
	}
	if err := r.checkSectorSize(); err != nil {
		return err
	}
	r.progress()
	if err := r.stageFiles(); err != nil {
		return err
	}
	r.progress()
	if err := r.verifyImage(ctx); err != nil {
		return err
	}
	r.progress()
	// The scan is read-only, so a dry run (NO_FLASH) makes it too.
	if err := r.badblocks(ctx); err != nil {
		return err
	}
	r.progress()
	if r.cfg.NoFlash {
		return devproto.ErrNoFlash
	}
	return r.unmountOldRoot()
}

// afterPointOfNoReturn installs balenaOS. The old system is gone, so a
// step that fails is tried again (retry) while the image is still in RAM.
// What the device needs to come online goes first: the image, then
// config.json and the network files on resin-boot (mounted alone, synced,
// unmounted), then the boot code; the backup and the log on resin-data come
// last and only as far as resin-data lets them.
func (r *run) afterPointOfNoReturn(ctx context.Context) error {
	var parts newParts
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"flashing", func() error { return r.flash(ctx) }},
		{"finding the new partitions", func() (err error) { parts, err = r.locatePartitions(ctx); return err }},
		{"writing resin-boot", func() error { return r.writeBoot(ctx, parts.boot) }},
		{"writing the boot code", r.installBootCode},
	} {
		if err := r.retry(ctx, step.what, step.do); err != nil {
			return err
		}
	}
	if err := r.retry(ctx, "writing the UEFI boot entry", func() error { return r.writeBootEntry(parts.bootPart) }); err != nil {
		r.log.Errorf("%v: the firmware has to find balenaOS by the removable-media path %s", err, r.efiLoader)
	}
	if err := r.retry(ctx, "writing resin-data", func() error { return r.writeData(parts.data) }); err != nil {
		r.log.Errorf("%v: the backup and this log are not on resin-data; balenaOS boots with its config.json", err)
	}
	return nil
}

// termExit ends a run that stopped before the point of no return: the disk
// is untouched, so TERM_EXIT decides (exit and let the old system boot, or
// reboot). A deliberate stop ends with TERM_EXIT's code, a failure with
// its error.
func (r *run) termExit(err error) error {
	var result error
	if errors.Is(err, devproto.ErrNoFlash) {
		r.log.Infof("%v; the disk is untouched", err)
		if c := r.cfg.TermExit.Code; c != 0 {
			result = &Stopped{Code: c}
		}
	} else {
		r.log.Errorf("%v", err)
		r.log.Errorf("stage 2 stopped before flashing; the disk is untouched")
		result = fmt.Errorf("before flashing: %w", err)
	}
	if r.cfg.TermExit.Reboot {
		r.log.Infof("TERM_EXIT=%q: rebooting into the old system", r.cfg.TermExit)
	} else {
		r.log.Infof("TERM_EXIT=%q: handing back to the old system", r.cfg.TermExit)
	}
	// Disarmed before the log is saved, so that the saved log says so.
	r.releaseWatchdog()
	r.cleanUp()
	r.saveLogToOldRoot()
	if r.cfg.TermExit.Reboot {
		return r.finish(result)
	}
	r.closeLogDrive()
	return result
}

// finish reboots (unless NoReboot) and otherwise returns result.
func (r *run) finish(result error) error {
	r.releaseWatchdog()
	if r.opts.NoReboot {
		r.log.Infof("--no-reboot: returning instead of rebooting")
		r.closeLogDrive()
		return result
	}
	r.log.Infof("rebooting")
	r.closeLogDrive()
	if err := reboot(); err != nil {
		r.log.Errorf("reboot: %v", err)
	}
	return result
}

func (r *run) unmountOldRoot() error {
	if busy, err := mountedFrom(r.cfg.BootDev); err == nil {
		for _, m := range busy {
			if filepath.Clean(m) != filepath.Clean(r.cfg.RootMnt) {
				return fmt.Errorf("%s is still mounted on %s; refusing to flash %s", r.cfg.BootDev, m, r.cfg.BootDev)
			}
		}
	}
	err := unmount(r.cfg.RootMnt)
	if errors.Is(err, unix.EINVAL) {
		r.log.Warnf("%s was not mounted", r.cfg.RootMnt)
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot unmount the old root: %w", err)
	}
	return nil
}
