package stage1

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// facts is what stage 1's checks found out about the device. The checks
// return it once they all passed, and the change takes it as a value: the
// change reads nothing the checks looked at in any other way, so a new check
// adds a field here and the step of the change that needs it reads it.
type facts struct {
	machine, release string // uname -m, uname -r
	device           devicetype.Device
	layout           BootLayout
	identity         blkdev.Identity   // what stage 2 checks before flashing
	progs            map[string]string // program name → device path
	setup            bootSetup         // the board family's boot setup
	boot             bootPlan          // what setup decided to do
	watchdog         watchdogChoice
	network          network // the connections to carry, the device's facts
}

// check runs every check that changes nothing and returns what they found.
func (r *run) check(ctx context.Context) (facts, error) {
	var f facts
	if r.host.Getuid() != 0 {
		return f, fmt.Errorf("%w: balena-migrate must run as root: run it with sudo", ErrNotRoot)
	}
	var err error
	if f.machine, f.release, err = r.host.Uname(); err != nil {
		return f, err
	}
	osr, err := r.checkOS()
	if err != nil {
		return f, err
	}
	if f.device, err = r.detectDevice(f.machine); err != nil {
		return f, err
	}
	r.log.Info("system: %s on %s (%s), kernel %s", osr.PrettyName, f.device.Name, f.machine, f.release)
	if err := r.checkSecureBoot(ctx); err != nil {
		return f, err
	}
	setup, bootDir, err := r.chooseBoot(f.device, r.log)
	if err != nil {
		return f, err
	}
	if f.layout, err = r.detectLayout(bootDir); err != nil {
		return f, err
	}
	r.log.Info("/ is %s, %s is %s, on disk %s", f.layout.Root.Source, f.layout.BootDir, f.layout.Boot.Source, f.layout.Root.Disk)
	if err := r.checkMounts(f.layout, r.cfg.HomeDir); err != nil {
		return f, err
	}
	if f.identity, err = r.diskIdentity(f.layout.Root); err != nil {
		return f, err
	}
	r.log.Info("disk %s: %s", f.layout.Root.Disk, f.identity)
	if err := r.checkInitramfsTools(); err != nil {
		return f, err
	}
	f.setup = setup
	if f.boot, err = setup.plan(r.bootEnv(f)); err != nil {
		return f, err
	}
	if f.progs, err = r.checkPrograms(requiredPrograms(r.cfg, f.boot.programs)); err != nil {
		return f, err
	}
	if f.watchdog, err = r.checkEnvironment(ctx, f); err != nil {
		return f, err
	}
	if f.network, err = r.checkReach(ctx); err != nil {
		return f, err
	}
	return f, nil
}

// checkEnvironment checks what the change needs besides the device itself:
// the kernel's modules, the files named in the config, space, the image's
// checksums and the disk's speed. It returns the watchdog of
// the stage-2 boot.
func (r *run) checkEnvironment(ctx context.Context, f facts) (watchdogChoice, error) {
	if st, err := r.stat("/lib/modules/" + f.release); err != nil || !st.IsDir() {
		return watchdogChoice{}, fmt.Errorf("%w: /lib/modules/%s is missing: the running kernel has no modules installed; reboot into the installed kernel and try again", ErrUnsupported, f.release)
	}
	wd := r.chooseWatchdog(r.cfg.Watchdog, f.release, r.log)
	if r.cfg.BackupScript != "" {
		if st, err := r.stat(r.cfg.BackupScript); err != nil || st.Mode()&0o111 == 0 {
			return wd, usage.Errorf("BACKUP_SCRIPT %s is missing or not executable", r.cfg.BackupScript)
		}
	}
	if err := r.checkStaticBinary(r.binary); err != nil {
		return wd, err
	}
	if err := r.checkOptionalFiles(f); err != nil {
		return wd, err
	}
	if err := checkSpace(r.host, r.p(r.cfg.HomeDir), r.cfg.MinRootAvail, "backup and initramfs (MIN_ROOT_AVAIL)"); err != nil {
		return wd, err
	}
	if err := r.checkChecksums(ctx, r.cfg.HomeDir, r.log); err != nil {
		return wd, err
	}
	if err := r.checkWriteSpeed(ctx); err != nil {
		return wd, err
	}
	return wd, nil
}

// checkOptionalFiles checks LOG_DRIVE and the grub files before anything changes.
func (r *run) checkOptionalFiles(f facts) error {
	if d := r.cfg.LogDrive; d != "" {
		st, err := r.stat(d)
		if err != nil || st.Mode()&os.ModeDevice == 0 {
			return usage.Errorf("LOG_DRIVE %s is not a block device: plug in the log drive or unset LOG_DRIVE", d)
		}
		if strings.HasPrefix(d, f.layout.Root.Disk) {
			return usage.Errorf("LOG_DRIVE %s is on %s, the disk that gets flashed: use a separate drive (USB stick) or unset LOG_DRIVE", d, f.layout.Root.Disk)
		}
	}
	if !r.cfg.GrubInstall {
		return nil
	}
	if f.boot.grubBoot == "" {
		r.log.Warn("GRUB_INSTALL is ignored on a %s", f.device.Name)
		return nil
	}
	for _, g := range []struct{ key, path string }{{"GRUB_CFG", r.cfg.GrubCfg}, {"GRUB_BOOT_IMG", r.cfg.GrubBootImg}, {"GRUB_CORE_IMG", r.cfg.GrubCoreImg}} {
		if g.path == "" {
			continue
		}
		if _, err := r.stat(g.path); err != nil {
			return usage.Errorf("%s %s: %w: extract it with `balena-migrate extract` into %s", g.key, g.path, err, r.cfg.HomeDir)
		}
	}
	return nil
}
