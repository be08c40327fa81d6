package stage1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/devicetype"
)

// ErrBootSetup marks a failed change of the boot configuration.
var ErrBootSetup = errors.New("boot setup failed")

// grubEntryID names the one-shot grub menu entry.
const grubEntryID = "balena-migrate"

// bootPlan is decided before the stage-2 config is written (it names the
// backups stage 2 restores) and applied after the initramfs is built.
type bootPlan struct {
	family     devicetype.Family
	dir        string // boot directory on the device
	initrd     string // device path of the installed initramfs
	stamp      string // suffix of the backups
	backups    [][2]string
	restore    []s2config.RestorePair
	grubUEFI   bool
	tryboot    bool     // Pi: tryboot.txt and a tryboot reboot; config.txt stays
	added      []string // files added for one boot, relative to bootMount
	bootMount  string   // mount point of the boot filesystem
	bootPart   string
	bootFSType string
}

// planBoot names the files the boot setup will touch.
func (r *run) planBoot(f facts) (bootPlan, error) {
	p := bootPlan{
		family: f.device.Family, dir: f.layout.BootDir,
		stamp:     r.host.Now().UTC().Format("20060102T150405Z"),
		bootMount: f.layout.Boot.Point, bootPart: f.layout.Boot.Partition, bootFSType: f.layout.Boot.FSType,
	}
	p.initrd = filepath.Join(p.dir, initramfsName(f.release))
	var originals []string
	switch p.family {
	case devicetype.FamilyRaspberryPi:
		originals = []string{"config.txt", "cmdline.txt"}
		if !hasTryboot(f.device) {
			break
		}
		// autoboot.txt may turn tryboot into a switch of partitions
		// (tryboot_a_b) that would not read our tryboot.txt.
		if r.exists(filepath.Join(p.dir, "autoboot.txt")) {
			r.log.Info("%s/autoboot.txt exists: the initramfs goes into config.txt, not tryboot.txt", p.dir)
			break
		}
		p.tryboot = true
		for _, f := range originals {
			if !r.exists(filepath.Join(p.dir, f)) {
				return p, fmt.Errorf("%w: %s is missing: this does not look like a %s boot partition", ErrBootSetup, filepath.Join(p.dir, f), p.family)
			}
		}
		// Nothing is changed that stage 2 would have to put back, except a
		// tryboot.txt of the operator's own (one of an earlier run is ours).
		originals = nil
		if data, err := r.read(filepath.Join(p.dir, trybootFile)); err == nil && !strings.Contains(string(data), "balena-migrate-initramfs") {
			originals = []string{trybootFile}
		} else {
			// ours, read once by the firmware: the stage-2 boot removes it
			// so that no later tryboot starts stage 2 again
			p.added = append(p.added, relTo(p.bootMount, filepath.Join(p.dir, trybootFile)))
		}
		if r.cfg.Debug {
			p.added = append(p.added, relTo(p.bootMount, filepath.Join(p.dir, trybootCmdline)))
		}
	case devicetype.FamilyBeagleBone:
		// u-boot loads initrd.img-<release> named in uEnv.txt's uname_r:
		// stage 1 puts its initramfs there and stage 2 puts the old one back.
		originals = []string{"uEnv.txt", "initrd.img-" + f.release}
		p.initrd = filepath.Join(p.dir, "initrd.img-"+f.release)
	case devicetype.FamilyPC:
		p.grubUEFI = r.exists("/sys/firmware/efi")
		if !r.exists(filepath.Join("/boot", "vmlinuz-"+f.release)) {
			return p, fmt.Errorf("%w: /boot/vmlinuz-%s, the running kernel, is missing: reboot into the installed kernel first", ErrBootSetup, f.release)
		}
	}
	for _, name := range originals {
		orig := filepath.Join(p.dir, name)
		if !r.exists(orig) {
			return p, fmt.Errorf("%w: %s is missing: this does not look like a %s boot partition", ErrBootSetup, orig, p.family)
		}
		data, err := r.read(orig)
		if err != nil {
			return p, fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		bak := orig + "." + p.stamp
		p.backups = append(p.backups, [2]string{orig, bak})
		// stage 2 restores the backup only if it still has this content
		p.restore = append(p.restore, s2config.RestorePair{Backup: relTo(p.bootMount, bak), Original: relTo(p.bootMount, orig), SHA256: sha256Hex(data)})
	}
	return p, nil
}

// checkNotSetUp refuses a boot configuration an earlier run already pointed
// at our initramfs: its backups would restore our change, not the original.
func (r *run) checkNotSetUp(f facts) error {
	dir := f.layout.BootDir
	switch f.device.Family {
	case devicetype.FamilyRaspberryPi:
		data, _ := r.read(filepath.Join(dir, "config.txt"))
		for _, l := range strings.Split(string(data), "\n") {
			if t := strings.TrimSpace(l); strings.HasPrefix(t, "initramfs ") && strings.Contains(t, "balena-migrate-initramfs") {
				return fmt.Errorf("%w: %s/config.txt already boots %s from an earlier run: put back config.txt and cmdline.txt from their timestamped backups in %s, then try again",
					ErrBootSetup, dir, strings.Fields(t)[1], dir)
			}
		}
	case devicetype.FamilyBeagleBone:
		installed, err := r.read(filepath.Join(dir, "initrd.img-"+f.release))
		ours, err2 := r.read(filepath.Join(r.cfg.HomeDir, initramfsName(f.release)))
		if err == nil && err2 == nil && bytes.Equal(installed, ours) {
			return fmt.Errorf("%w: %s/initrd.img-%s is the balena-migrate initramfs of an earlier run: put back the original from its timestamped backup, then try again", ErrBootSetup, dir, f.release)
		}
	}
	return nil
}

func relTo(mount, p string) string {
	rel, err := filepath.Rel(mount, p)
	if err != nil {
		return p
	}
	return rel
}

// applyBoot installs the initramfs and points the boot loader at it. Every
// change is journaled until the caller commits.
func (r *run) applyBoot(ctx context.Context, f facts, inputs []string, initrd string) error {
	p := f.boot
	// What stage 2 reads must be on disk before the boot loader points at
	// it: a power cut after the boot change must not find it missing.
	if err := r.durable(inputs...); err != nil {
		return err
	}
	for i, b := range p.backups {
		data, err := r.read(b[0])
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		if sha256Hex(data) != p.restore[i].SHA256 {
			return fmt.Errorf("%w: %s changed while balena-migrate ran: run it again", ErrBootSetup, b[0])
		}
		if err := r.journal.Add(b[1]); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		if err := os.WriteFile(r.p(b[1]), data, 0o644); err != nil {
			return fmt.Errorf("%w: backup of %s: %w", ErrBootSetup, b[0], err)
		}
		if err := r.durable(b[1]); err != nil {
			return err
		}
	}
	data, err := r.read(initrd)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	if err := r.journal.Write(p.initrd, data, 0o644); err != nil {
		return fmt.Errorf("%w: install the initramfs: %w", ErrBootSetup, err)
	}
	r.log.Info("installed the initramfs as %s", p.initrd)
	switch p.family {
	case devicetype.FamilyRaspberryPi:
		return r.setupPi(p)
	case devicetype.FamilyBeagleBone:
		return r.setupBeagleBone(p)
	}
	return r.setupGrub(ctx, f)
}

func (r *run) editFile(path string, edit func(string) string) error {
	data, err := r.read(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	st, err := r.stat(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	if err := r.journal.Write(path, []byte(edit(string(data))), st.Mode().Perm()); err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	return nil
}

// setupPi adds `initramfs <file> followkernel` to config.txt (disabling
// other initramfs lines) and `debug` to cmdline.txt when DEBUG; on boards
// with tryboot it writes tryboot.txt instead.
func (r *run) setupPi(p bootPlan) error {
	line := fmt.Sprintf("initramfs %s followkernel", filepath.Base(p.initrd))
	if p.tryboot {
		return r.setupTryboot(p, line)
	}
	if err := r.editFile(filepath.Join(p.dir, "config.txt"), func(s string) string {
		return piConfig(s, line)
	}); err != nil {
		return err
	}
	r.log.Info("%s/config.txt: %s", p.dir, line)
	if r.cfg.Debug {
		return r.editFile(filepath.Join(p.dir, "cmdline.txt"), addDebug)
	}
	return nil
}

func addDebug(cmdline string) string {
	t := strings.TrimSpace(cmdline)
	for _, f := range strings.Fields(t) {
		if f == "debug" {
			return cmdline
		}
	}
	return t + " debug\n"
}

// setupBeagleBone: the initramfs is already in place of initrd.img-<release>;
// DEBUG adds debug to uEnv.txt's cmdline.
func (r *run) setupBeagleBone(p bootPlan) error {
	if !r.cfg.Debug {
		return nil
	}
	return r.editFile(filepath.Join(p.dir, "uEnv.txt"), func(s string) string {
		var out []string
		found := false
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			if strings.HasPrefix(l, "cmdline=") {
				l = "cmdline=" + strings.TrimSpace(addDebug(strings.TrimPrefix(l, "cmdline=")))
				found = true
			}
			out = append(out, l)
		}
		if !found {
			out = append(out, "cmdline=debug")
		}
		return strings.Join(out, "\n") + "\n"
	})
}
