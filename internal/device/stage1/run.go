// Package stage1 is balena-migrate on the device before the reboot: it
// checks that the device can be migrated, verifies the image, makes the
// backup and the NetworkManager files, writes the stage-2 config, builds an
// initramfs that runs stage 2 and points the boot loader at it. Every change
// is journaled and undone if anything fails before the boot setup is done.
//
// The checks (facts.go) change nothing and return what they found as one
// value, facts; the change (run.go) takes it as an argument. The boot setup
// of each board family is a bootSetup (boot.go) with plan, apply and undo,
// one file per family; chooseBoot alone looks at the family. The design,
// and how to add a check or a family, is in docs/stage1.md.
package stage1

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
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

// run is one stage-1 run: the device and the settings, and the journal of
// its changes. What the checks find about the device is not kept here but
// returned as facts, which the change takes as a value.
type run struct {
	files
	cfg     *Config
	host    Host
	log     *Log
	journal *Journal
	binary  string // device path of the static balena-migrate binary
	s2path  string // device path of the stage-2 config
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
	if r.host.Getuid() == 0 {
		r.removeStaleLeftovers()
	}
	f, err := r.check(ctx)
	if err != nil {
		return Result{}, err
	}
	setup, err := r.change(ctx, f)
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
	if a := f.boot.rebootArg; a != "" {
		res.Reboot, res.RebootArg = `reboot "`+a+`"`, a
	}
	return res, nil
}

// prepared is what the change made for stage 2 before the boot setup.
type prepared struct {
	image    Image
	backup   string   // archive name in HOME_DIR; "": no backup
	networks []string // NetworkManager files in HOME_DIR
	initrd   string   // the built initramfs (device path)
	// balenaConfig is the config.json stage 2 writes (a name in HOME_DIR).
	balenaConfig string
}

// change makes the journaled changes from what the checks found. It
// reports whether the boot setup was done.
func (r *run) change(ctx context.Context, f facts) (bool, error) {
	var out prepared
	var err error
	if out.image, err = r.prepareImage(ctx, f.device); err != nil {
		return false, err
	}
	img := out.image
	r.log.Info("image %s: %d MiB, sha256 %s", img.Path, img.Size>>20, img.SHA256)
	if err := checkDataMountable(img, f.release); err != nil {
		return false, err
	}
	if err := r.checkGrubFlash(img, f.boot); err != nil {
		return false, err
	}
	if out.backup, err = r.makeBackup(ctx); err != nil {
		return false, err
	}
	if out.backup != "" {
		st, err := r.stat(r.homePath(out.backup))
		if err != nil {
			return false, err
		}
		if err := checkBackupFits(img, st.Size()); err != nil {
			return false, err
		}
	}
	if out.networks, err = r.networkConfigs(f.network); err != nil {
		return false, err
	}
	if out.balenaConfig, err = r.stage2BalenaConfig(f.network.facts); err != nil {
		return false, err
	}
	if err := r.writeStage2Config(f, out); err != nil {
		return false, err
	}
	if out.initrd, err = r.buildInitramfs(ctx, f); err != nil {
		return false, err
	}
	if err := r.checkMemory(img.Path, r.homePath(out.backup), out.initrd); err != nil {
		return false, err
	}
	st, err := r.stat(out.initrd)
	if err != nil {
		return false, err
	}
	if err := checkSpace(r.host, r.p(f.boot.dir), st.Size()+1<<20, "the initramfs in "+f.boot.dir); err != nil {
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
	e := r.bootEnv(f)
	e.journal = r.journal
	if err := installBoot(ctx, e, f.setup, f.boot, r.stage2Inputs(f, out), out.initrd, r.leftovers(f.boot)); err != nil {
		return false, err
	}
	return true, nil
}

// bootEnv is the device as the boot setup sees it, without the journal.
func (r *run) bootEnv(f facts) bootEnv {
	return bootEnv{files: r.files, host: r.host, log: r.log, cfg: r.cfg, release: f.release, layout: f.layout, progs: f.progs}
}

func (r *run) homePath(name string) string {
	if name == "" {
		return ""
	}
	return filepath.Join(r.cfg.HomeDir, name)
}

// writeStage2Config writes /etc/balena-migrate-stage2.conf (docs/stage2-config.md).
func (r *run) writeStage2Config(f facts, out prepared) error {
	img, p := out.image, f.boot
	c := s2config.Default()
	c.BootDev = f.layout.Root.Disk
	c.DiskSize, c.DiskTableID, c.RootPartStart = f.identity.Size, f.identity.TableID, f.identity.RootStart
	c.DiskSerial = f.identity.Serial
	c.HomeDir = r.cfg.HomeDir
	c.ImageFile = img.Path
	c.ImageSHA256 = img.SHA256
	c.BackupFile = out.backup
	c.BalenaConfig = out.balenaConfig
	c.NetworkConfigs = out.networks
	undo := f.setup.undo(p)
	c.RestoreBootFiles, c.RemoveBootFiles = undo.restore, undo.remove
	c.CleanupFiles = r.leftovers(p)
	if len(undo.restore) > 0 || len(undo.remove) > 0 {
		// A separate boot partition is mounted by stage 2; boot files on the
		// root filesystem are restored under ROOT_MNT.
		c.OrigBootPart, c.OrigBootFSType, c.MountBoot = p.boot.Partition, p.boot.FSType, p.boot.Point != "/"
	}
	c.NoFlash = r.cfg.NoFlash
	te, _ := s2config.ParseTermExit(r.cfg.TermExit)
	c.TermExit = te
	c.LogDrive, c.LogFSType = r.cfg.LogDrive, r.cfg.LogFSType
	c.MemMinFree = r.cfg.MemMinFreeS2
	c.MaxBadblocks = r.cfg.MaxBadblocks
	c.Watchdog, c.WatchdogModule = f.watchdog.timeout, f.watchdog.module
	if c.GrubInstall = p.grubInstall; c.GrubInstall != s2config.GrubNone {
		c.GrubCfg = relOrAbs(r.cfg.HomeDir, r.cfg.GrubCfg)
		c.GrubBootImg = relOrAbs(r.cfg.HomeDir, r.cfg.GrubBootImg)
		c.GrubCoreImg = relOrAbs(r.cfg.HomeDir, r.cfg.GrubCoreImg)
	}
	if p.grubBoot != "" {
		c.GrubBootType = p.grubBoot
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
