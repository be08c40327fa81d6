package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/devicetype"
)

// ErrBootSetup marks a failed change of the boot configuration.
var ErrBootSetup = errors.New("boot setup failed")

// bootSetup is how one board family makes the next boot, and only that
// one, start stage 2 from stage 1's initramfs. Each family lives in its own
// file: grub.go (PC with BIOS or EFI grub), piconfig.go (Raspberry Pi,
// config.txt), tryboot.go (Raspberry Pi 4 and later, tryboot.txt),
// beaglebone.go (u-boot's uEnv.txt). chooseBoot is the only place that
// looks at the family. docs/stage1.md says how to add one.
type bootSetup interface {
	// plan decides everything apply will do, reading the boot files and
	// changing nothing (e.journal is nil). It refuses a boot configuration
	// it cannot set up, or one an earlier run already changed. Stage 1
	// runs it among its checks; the plan becomes part of the facts.
	plan(e bootEnv) (bootPlan, error)
	// apply points the boot loader at the initramfs, which is in place at
	// p.initrd already and the backups p names made, for the next boot
	// only. Every change goes through e.journal, so that a failure puts
	// the boot files back as they were.
	apply(ctx context.Context, e bootEnv, p bootPlan) error
	// undo is how the old system boots again once the stage-2 boot has
	// started: what stage 2 (and, on a hang, the watchdog reset into the
	// old system) finds put back. Stage 2 does it from the stage-2 config,
	// which is written before apply runs.
	undo(p bootPlan) bootUndo
}

// bootEnv is the device as a boot setup sees it.
type bootEnv struct {
	files
	host    Host
	log     *Log
	cfg     *Config
	release string // the running kernel
	layout  BootLayout
	journal *Journal          // nil in plan: it only reads
	progs   map[string]string // program name → device path; nil in plan
}

// bootPlan is what a boot setup decided before anything changes. The
// stage-2 config (written before apply) takes the undo from it.
type bootPlan struct {
	dir      string       // the boot directory (device path)
	boot     Disk         // the filesystem holding dir
	initrd   string       // where the initramfs is installed (device path)
	stamp    string       // suffix of the backups
	backups  []bootBackup // files apply changes, copied aside before it runs
	added    []string     // files apply adds for the stage-2 boot only (device paths)
	programs []string     // programs apply runs, checked with the others
	// rebootArg is the argument of the reboot that starts stage 2; "" for
	// a plain reboot.
	rebootArg string
	// grubBoot is GRUB_BOOT_TYPE for stage 2 on a grub family; "" elsewhere.
	grubBoot string
	// grubInstall is GRUB_INSTALL for stage 2 (s2config.GrubNone, GrubFlash).
	grubInstall string
}

// leftovers are what the boot setup installs on the root filesystem for
// the stage-2 boot only: a stage 2 that hands back to the old system
// removes them (CLEANUP_FILES), so that no later update-grub offers a boot
// that flashes an old image. An initramfs on a separate boot partition is
// unreachable without grub's script and stays.
func (p bootPlan) leftovers() []string {
	var out []string
	if p.grubBoot != "" {
		out = append(out, grubScript)
	}
	if p.boot.Point == "/" {
		out = append(out, p.initrd)
	}
	return out
}

// bootBackup is one file apply changes and the copy kept of it.
type bootBackup struct {
	original, backup string // device paths
	sha256           string // of the original as planned: it must not change before apply
}

// bootUndo is what stage 2 does to the boot filesystem so that the old
// system boots again: copy each backup back, remove the files added for
// one boot. Paths are relative to the boot filesystem.
type bootUndo struct {
	restore []s2config.RestorePair
	remove  []string
}

// chooseBoot picks the boot setup of the device's family and the directory
// of its boot files.
func (f files) chooseBoot(d devicetype.Device, log *Log) (bootSetup, string, error) {
	switch d.Family {
	case devicetype.FamilyPC:
		if f.exists("/sys/firmware/efi") {
			return grubEFIBoot{}, "/boot", nil
		}
		return grubBIOSBoot{}, "/boot", nil
	case devicetype.FamilyRaspberryPi:
		dir := "/boot"
		if f.exists("/boot/firmware/config.txt") {
			dir = "/boot/firmware"
		}
		if !hasTryboot(d) {
			return piConfigBoot{}, dir, nil
		}
		// autoboot.txt may turn tryboot into a switch of partitions
		// (tryboot_a_b) that would not read our tryboot.txt.
		if f.exists(filepath.Join(dir, "autoboot.txt")) {
			log.Info("%s/autoboot.txt exists: the initramfs goes into config.txt, not tryboot.txt", dir)
			return piConfigBoot{}, dir, nil
		}
		return piTrybootBoot{}, dir, nil
	case devicetype.FamilyBeagleBone:
		return beagleBoneBoot{}, "/boot", nil
	case devicetype.FamilyExtlinux:
		return nil, "", fmt.Errorf("%w: %s (%s) boots through u-boot's extlinux.conf, for which balena-migrate has no one-shot boot setup yet: flash it by hand", ErrDeviceType, d.Name, d.Slugs[0])
	}
	return nil, "", fmt.Errorf("%w: %s has no boot setup (family %s)", ErrDeviceType, d.Name, d.Family)
}

// newPlan starts a plan: the initramfs goes into the boot directory under
// its own name, nothing is backed up or added yet.
func (e bootEnv) newPlan() bootPlan {
	dir := e.layout.BootDir
	return bootPlan{
		dir: dir, boot: e.layout.Boot, initrd: filepath.Join(dir, initramfsName(e.release)),
		stamp: e.host.Now().UTC().Format("20060102T150405Z"),
	}
}

// backUp adds the named files of the boot directory to the plan's backups.
// what names the boot partition they must be on for the refusal.
func (e bootEnv) backUp(p *bootPlan, what string, names ...string) error {
	for _, name := range names {
		orig := filepath.Join(p.dir, name)
		if !e.exists(orig) {
			return fmt.Errorf("%w: %s is missing: this does not look like a %s boot partition", ErrBootSetup, orig, what)
		}
		data, err := e.read(orig)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		p.backups = append(p.backups, bootBackup{original: orig, backup: orig + "." + p.stamp, sha256: sha256Hex(data)})
	}
	return nil
}

// putBack is the usual undo: every backup copied back (only if it still
// has the content stage 1 saw), every added file removed.
func (p bootPlan) putBack() bootUndo {
	var u bootUndo
	for _, b := range p.backups {
		u.restore = append(u.restore, s2config.RestorePair{Backup: relTo(p.boot.Point, b.backup), Original: relTo(p.boot.Point, b.original), SHA256: b.sha256})
	}
	for _, a := range p.added {
		u.remove = append(u.remove, relTo(p.boot.Point, a))
	}
	return u
}

func relTo(mount, p string) string {
	rel, err := filepath.Rel(mount, p)
	if err != nil {
		return p
	}
	return rel
}

// installBoot makes what every family's apply stands on durable: the files
// stage 2 reads (inputs), the backups of the boot files, the initramfs at
// p.initrd. Then it runs the family's apply. Every change is journaled
// until the caller commits.
func installBoot(ctx context.Context, e bootEnv, s bootSetup, p bootPlan, inputs []string, initrd string, leftovers []string) error {
	// What stage 2 reads must be on disk before the boot loader points at
	// it: a power cut after the boot change must not find it missing.
	if err := e.durable(inputs...); err != nil {
		return err
	}
	for _, b := range p.backups {
		data, err := e.read(b.original)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		if sha256Hex(data) != b.sha256 {
			return fmt.Errorf("%w: %s changed while balena-migrate ran: run it again", ErrBootSetup, b.original)
		}
		if err := e.journal.Add(b.backup); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		if err := os.WriteFile(e.p(b.backup), data, 0o644); err != nil {
			return fmt.Errorf("%w: backup of %s: %w", ErrBootSetup, b.original, err)
		}
		if err := e.durable(b.backup); err != nil {
			return err
		}
	}
	data, err := e.read(initrd)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	if err := e.journal.Write(p.initrd, data, 0o644); err != nil {
		return fmt.Errorf("%w: install the initramfs: %w", ErrBootSetup, err)
	}
	e.log.Info("installed the initramfs as %s", p.initrd)
	if err := e.installCleanup(leftovers); err != nil {
		return err
	}
	return s.apply(ctx, e, p)
}

// editFile rewrites a boot file through the journal, keeping its mode.
func (e bootEnv) editFile(path string, edit func(string) string) error {
	data, err := e.read(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	st, err := e.stat(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	if err := e.journal.Write(path, []byte(edit(string(data))), st.Mode().Perm()); err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	return nil
}

// durable fsyncs each file and then each directory holding one, so that
// the files survive a power cut with their names.
func (e bootEnv) durable(paths ...string) error {
	var dirs []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := e.host.Sync(e.p(p)); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		if d := filepath.Dir(p); !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := e.host.Sync(e.p(d)); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
	}
	return nil
}
