// Package stage1 is balena-migrate on the device before the reboot: it
// checks that the device can be migrated, verifies the image, makes the
// backup and the NetworkManager files, writes the stage-2 config, builds an
// initramfs that runs stage 2 and points the boot loader at it. Every change
// is journaled and undone if anything fails before the boot setup is done.
package stage1

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Options are the inputs of one stage-1 run.
type Options struct {
	Config     Config
	Host       Host
	Log        *Log
	Binary     string // device path of the static balena-migrate binary
	Stage2Conf string // default s2config.DefaultPath
}

// Result says what the caller does after success.
type Result struct {
	SetupDone bool // the boot loader now starts stage 2
	RebootIn  int  // seconds; -1: the operator reboots
	// Reboot is the command that boots stage 2: "reboot", or on a
	// Raspberry Pi with tryboot TrybootReboot (a plain reboot boots the
	// old system).
	Reboot string
	// RebootArg is the argument that command gives reboot ("" for none),
	// for a caller that reboots the device itself.
	RebootArg string
}

// run is the state of one stage-1 run.
type run struct {
	files
	cfg      *Config
	host     Host
	log      *Log
	journal  *Journal
	binary   string
	release  string
	machine  string
	device   devicetype.Device
	layout   BootLayout
	progs    map[string]string
	s2path   string
	imageGz  string
	backup   string
	networks []string
	plan     bootPlan
	grub     string // GRUB_INSTALL for stage 2
	identity blkdev.Identity
	watchdog watchdogChoice
}

// Run performs stage 1. On error every change made is undone.
func Run(ctx context.Context, o Options) (Result, error) {
	cfg := o.Config
	if o.Log == nil {
		o.Log = &Log{W: os.Stdout}
	}
	r := &run{files: files{o.Host.Root()}, cfg: &cfg, host: o.Host, log: o.Log, binary: o.Binary, s2path: o.Stage2Conf}
	if r.s2path == "" {
		r.s2path = s2config.DefaultPath
	}
	r.journal = newJournal(r.root)
	if err := r.check(ctx); err != nil {
		return Result{}, err
	}
	setup, err := r.change(ctx)
	if err != nil {
		if n := r.journal.Len(); n > 0 {
			if rerr := r.journal.Rollback(); rerr != nil {
				return Result{}, fmt.Errorf("%w; undoing the changes also failed: %w", err, rerr)
			}
			r.log.Info("undid %d changes: the system is as it was", n)
		}
		return Result{}, err
	}
	if err := r.journal.Commit(); err != nil {
		r.log.Warn("%v", err)
	}
	res := Result{SetupDone: setup, RebootIn: -1, Reboot: "reboot"}
	if setup {
		res.RebootIn = cfg.Reboot
	}
	if r.plan.tryboot {
		res.Reboot, res.RebootArg = TrybootReboot, TrybootArg
	}
	return res, nil
}

// check runs every check that changes nothing.
func (r *run) check(ctx context.Context) error {
	if r.host.Getuid() != 0 {
		return fmt.Errorf("%w: balena-migrate must run as root: run it with sudo", ErrNotRoot)
	}
	var err error
	if r.machine, r.release, err = r.host.Uname(); err != nil {
		return err
	}
	osr, err := r.checkOS()
	if err != nil {
		return err
	}
	if r.device, err = r.detectDevice(r.machine); err != nil {
		return err
	}
	r.log.Info("system: %s on %s (%s), kernel %s", osr.PrettyName, r.device.Name, r.machine, r.release)
	if r.layout, err = r.detectLayout(r.device.Family == devicetype.FamilyRaspberryPi); err != nil {
		return err
	}
	r.log.Info("/ is %s, %s is %s, on disk %s", r.layout.Root.Source, r.layout.BootDir, r.layout.Boot.Source, r.layout.Root.Disk)
	if r.identity, err = r.diskIdentity(r.layout.Root); err != nil {
		return err
	}
	r.log.Info("disk %s: %s", r.layout.Root.Disk, r.identity)
	if err := r.checkInitramfsTools(); err != nil {
		return err
	}
	if r.progs, err = r.checkPrograms(requiredPrograms(r.cfg, r.device.Family)); err != nil {
		return err
	}
	if err := r.checkNotSetUp(); err != nil {
		return err
	}
	if r.plan, err = r.planBoot(); err != nil {
		return err
	}
	if r.grub, err = r.grubMode(r.plan); err != nil {
		return err
	}
	return r.checkEnvironment(ctx)
}

func (r *run) checkEnvironment(ctx context.Context) error {
	if st, err := r.stat("/lib/modules/" + r.release); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: /lib/modules/%s is missing: the running kernel has no modules installed; reboot into the installed kernel and try again", ErrUnsupported, r.release)
	}
	r.watchdog = r.chooseWatchdog()
	if r.cfg.BackupScript != "" {
		if st, err := r.stat(r.cfg.BackupScript); err != nil || st.Mode()&0o111 == 0 {
			return usage.Errorf("BACKUP_SCRIPT %s is missing or not executable", r.cfg.BackupScript)
		}
	}
	if err := r.checkStaticBinary(r.binary); err != nil {
		return err
	}
	if err := r.checkOptionalFiles(); err != nil {
		return err
	}
	if err := checkSpace(r.host, r.p(r.cfg.HomeDir), r.cfg.MinRootAvail, "backup and initramfs (MIN_ROOT_AVAIL)"); err != nil {
		return err
	}
	if err := r.checkChecksums(ctx, r.cfg.HomeDir, r.log); err != nil {
		return err
	}
	if err := r.checkWriteSpeed(ctx); err != nil {
		return err
	}
	bc, _, err := r.readBalenaConfig()
	if err != nil {
		return err
	}
	return checkConnectivity(ctx, r.host, endpoints(*r.cfg, bc), r.log)
}

// checkOptionalFiles checks LOG_DRIVE and the grub files before anything changes.
func (r *run) checkOptionalFiles() error {
	if d := r.cfg.LogDrive; d != "" {
		st, err := r.stat(d)
		if err != nil || st.Mode()&os.ModeDevice == 0 {
			return usage.Errorf("LOG_DRIVE %s is not a block device: plug in the log drive or unset LOG_DRIVE", d)
		}
		if strings.HasPrefix(d, r.layout.Root.Disk) {
			return usage.Errorf("LOG_DRIVE %s is on %s, the disk that gets flashed: use a separate drive (USB stick) or unset LOG_DRIVE", d, r.layout.Root.Disk)
		}
	}
	if !r.cfg.GrubInstall {
		return nil
	}
	if r.device.Family != devicetype.FamilyPC {
		r.log.Warn("GRUB_INSTALL is ignored on a %s", r.device.Name)
		return nil
	}
	for _, f := range []struct{ key, path string }{{"GRUB_CFG", r.cfg.GrubCfg}, {"GRUB_BOOT_IMG", r.cfg.GrubBootImg}, {"GRUB_CORE_IMG", r.cfg.GrubCoreImg}} {
		if f.path == "" {
			continue
		}
		if _, err := r.stat(f.path); err != nil {
			return usage.Errorf("%s %s: %w: extract it with `balena-migrate extract` into %s", f.key, f.path, err, r.cfg.HomeDir)
		}
	}
	return nil
}

// change makes the journaled changes. It reports whether the boot setup was done.
func (r *run) change(ctx context.Context) (bool, error) {
	img, err := r.prepareImage(ctx)
	if err != nil {
		return false, err
	}
	r.imageGz = img.Path
	r.log.Info("image %s: %d MiB, sha256 %s", img.Path, img.Size>>20, img.SHA256)
	if err := r.checkGrubFlash(img, r.grub, r.plan); err != nil {
		return false, err
	}
	if r.backup, err = r.makeBackup(ctx); err != nil {
		return false, err
	}
	if r.networks, err = r.networkConfigs(); err != nil {
		return false, err
	}
	plan := r.plan
	if err := r.writeStage2Config(img, plan); err != nil {
		return false, err
	}
	initrd, err := r.buildInitramfs(ctx, r.s2path)
	if err != nil {
		return false, err
	}
	if err := r.checkMemory(r.imageGz, r.homePath(r.backup), initrd); err != nil {
		return false, err
	}
	st, err := r.stat(initrd)
	if err != nil {
		return false, err
	}
	if err := checkSpace(r.host, r.p(plan.dir), st.Size()+1<<20, "the initramfs in "+plan.dir); err != nil {
		return false, err
	}
	if r.cfg.NoSetup {
		r.log.Info("NO_SETUP/--pretend: the boot configuration is left as it is")
		return false, nil
	}
	// A stop (signal, or the SSH session that started us gone) must not
	// be followed by a change to how the device boots.
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("stopped before the boot setup: %w", err)
	}
	if err := r.applyBoot(ctx, plan, initrd); err != nil {
		return false, err
	}
	return true, nil
}

func (r *run) homePath(name string) string {
	if name == "" {
		return ""
	}
	return filepath.Join(r.cfg.HomeDir, name)
}

// writeStage2Config writes /etc/balena-migrate-stage2.conf (docs/stage2-config.md).
func (r *run) writeStage2Config(img Image, p bootPlan) error {
	c := s2config.Default()
	c.BootDev = r.layout.Root.Disk
	c.DiskSize, c.DiskTableID, c.RootPartStart = r.identity.Size, r.identity.TableID, r.identity.RootStart
	c.HomeDir = r.cfg.HomeDir
	c.ImageFile = img.Path
	c.ImageSHA256 = img.SHA256
	c.BackupFile = r.backup
	if r.cfg.BalenaConfig != "" {
		c.BalenaConfig = relOrAbs(r.cfg.HomeDir, r.cfg.BalenaConfig)
	}
	c.NetworkConfigs = r.networks
	c.RestoreBootFiles = p.restore
	c.RemoveBootFiles = p.added
	if len(p.restore) > 0 || len(p.added) > 0 {
		// A separate boot partition is mounted by stage 2; boot files on the
		// root filesystem are restored under ROOT_MNT.
		c.OrigBootPart, c.OrigBootFSType, c.MountBoot = p.bootPart, p.bootFSType, p.bootMount != "/"
	}
	c.NoFlash = r.cfg.NoFlash
	te, _ := s2config.ParseTermExit(r.cfg.TermExit)
	c.TermExit = te
	c.LogDrive, c.LogFSType = r.cfg.LogDrive, r.cfg.LogFSType
	c.MemMinFree = r.cfg.MemMinFreeS2
	c.MaxBadblocks = r.cfg.MaxBadblocks
	c.Watchdog, c.WatchdogModule = r.watchdog.timeout, r.watchdog.module
	if c.GrubInstall = r.grub; c.GrubInstall != s2config.GrubNone {
		c.GrubCfg = relOrAbs(r.cfg.HomeDir, r.cfg.GrubCfg)
		c.GrubBootImg = relOrAbs(r.cfg.HomeDir, r.cfg.GrubBootImg)
		c.GrubCoreImg = relOrAbs(r.cfg.HomeDir, r.cfg.GrubCoreImg)
	}
	if p.grubUEFI {
		c.GrubBootType = s2config.BootUEFI
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("stage-2 config: %w", err)
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	if err := r.journal.Write(r.s2path, data, 0o600); err != nil {
		return err
	}
	r.log.Info("wrote %s (BOOT_DEV=%s NO_FLASH=%t)", r.s2path, c.BootDev, c.NoFlash)
	return nil
}

func relOrAbs(home, p string) string {
	if p == "" {
		return ""
	}
	if rel, err := filepath.Rel(home, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}
