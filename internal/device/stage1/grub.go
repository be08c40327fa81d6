package stage1

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// A PC (and a UEFI arm64 machine) boots through grub: stage 1 adds a menu
// entry with the running kernel, its command line and our initramfs
// (/etc/grub.d/42_balena, update-grub) and makes it the default of the next
// boot only (grub-reboot). grub clears that choice as it boots the entry, so
// any later boot starts the old system's default entry again.

// grubScript is the /etc/grub.d script that makes update-grub write the
// stage-2 entry.
const grubScript = "/etc/grub.d/42_balena"

// grubEntryID names the one-shot grub menu entry.
const grubEntryID = "balena-migrate"

// grubPrograms are the programs the grub boot setup runs.
func grubPrograms() []string { return []string{"update-grub", "grub-reboot", "grub-probe"} }

// grubBIOSBoot is grub booted by a PC's BIOS (legacy boot).
type grubBIOSBoot struct{}

// grubEFIBoot is grub booted by UEFI firmware.
type grubEFIBoot struct{}

var (
	_ bootSetup = grubBIOSBoot{}
	_ bootSetup = grubEFIBoot{}
)

// plan: on a BIOS machine stage 2 can install grub only by writing boot.img
// and core.img itself (it cannot run grub-install: the initramfs carries no
// grub), so GRUB_INSTALL needs both.
func (grubBIOSBoot) plan(e bootEnv) (bootPlan, error) {
	p, err := planGrub(e, s2config.BootLegacy)
	if err == nil {
		err = e.checkGrubMBR(e.layout.Root.Disk)
	}
	if err != nil || !e.cfg.GrubInstall {
		return p, err
	}
	if e.cfg.GrubBootImg == "" || e.cfg.GrubCoreImg == "" {
		return p, usage.Errorf("GRUB_INSTALL=TRUE on this BIOS machine needs GRUB_BOOT_IMG and GRUB_CORE_IMG: " +
			"stage 2 cannot run grub-install (the initramfs carries no grub); extract boot.img and core.img with " +
			"`balena-migrate extract --grub-boot boot.img --grub-core core.img`, or unset GRUB_INSTALL (balenaOS images boot with their own grub)")
	}
	p.grubInstall = s2config.GrubFlash
	return p, nil
}

// plan: with UEFI the image's own EFI loader boots; GRUB_INSTALL only has
// stage 2 place GRUB_CFG.
func (grubEFIBoot) plan(e bootEnv) (bootPlan, error) {
	p, err := planGrub(e, s2config.BootUEFI)
	if err == nil {
		err = e.checkESP(e.layout)
	}
	if err == nil && e.cfg.GrubInstall {
		p.grubInstall = s2config.GrubFlash
	}
	return p, err
}

func planGrub(e bootEnv, bootType string) (bootPlan, error) {
	p := e.newPlan()
	p.programs, p.grubBoot = grubPrograms(), bootType
	if !e.exists(filepath.Join("/boot", "vmlinuz-"+e.release)) {
		return p, fmt.Errorf("%w: /boot/vmlinuz-%s, the running kernel, is missing: reboot into the installed kernel first", ErrBootSetup, e.release)
	}
	return p, nil
}

func (grubBIOSBoot) apply(ctx context.Context, e bootEnv, p bootPlan) error {
	return applyGrub(ctx, e, p)
}

func (grubEFIBoot) apply(ctx context.Context, e bootEnv, p bootPlan) error {
	return applyGrub(ctx, e, p)
}

// undo: nothing for stage 2 to put back. grub-reboot's choice is gone once
// grub has booted the entry; the entry itself stays in grub.cfg, never the
// default.
func (grubBIOSBoot) undo(bootPlan) bootUndo { return bootUndo{} }

func (grubEFIBoot) undo(bootPlan) bootUndo { return bootUndo{} }

// applyGrub writes /etc/grub.d/42_balena, regenerates grub.cfg and makes
// the entry the default for the next boot only (grub-reboot).
func applyGrub(ctx context.Context, e bootEnv, p bootPlan) error {
	entry, err := grubEntry(ctx, e, p)
	if err != nil {
		return err
	}
	if err := e.journal.Write(grubScript, []byte(entry), 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	cfg := "/boot/grub/grub.cfg"
	for _, f := range []string{cfg, "/boot/grub/grubenv"} {
		if err := e.journal.Change(f); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
	}
	if _, err := e.host.Run(ctx, nil, e.progs["update-grub"]); err != nil {
		return fmt.Errorf("%w: update-grub: %w", ErrBootSetup, err)
	}
	data, err := e.read(cfg)
	if err != nil || !bytes.Contains(data, []byte("--id "+grubEntryID)) {
		return fmt.Errorf("%w: update-grub did not put the %s entry into %s: check /etc/grub.d and /etc/default/grub", ErrBootSetup, grubEntryID, cfg)
	}
	// grub.cfg with our entry must be durable before grubenv names it.
	if err := e.durable(cfg); err != nil {
		return err
	}
	if _, err := e.host.Run(ctx, nil, e.progs["grub-reboot"], grubEntryID); err != nil {
		return fmt.Errorf("%w: grub-reboot: %w", ErrBootSetup, err)
	}
	if err := e.durable("/boot/grub/grubenv"); err != nil {
		return err
	}
	env, err := e.read("/boot/grub/grubenv")
	if err != nil || !bytes.Contains(env, []byte("next_entry="+grubEntryID)) {
		return fmt.Errorf("%w: grub-reboot did not set next_entry=%s in /boot/grub/grubenv", ErrBootSetup, grubEntryID)
	}
	e.log.Info("grub boots %s once on the next boot", grubEntryID)
	return nil
}

// grubEntry renders the /etc/grub.d script with a menu entry that boots the
// running kernel with its command line and our initramfs.
func grubEntry(ctx context.Context, e bootEnv, p bootPlan) (string, error) {
	probe := func(target string) (string, error) {
		out, err := e.host.Run(ctx, nil, e.progs["grub-probe"], "--target="+target, p.boot.Point)
		if err != nil {
			return "", fmt.Errorf("%w: grub-probe: %w", ErrBootSetup, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	uuid, err := probe("fs_uuid")
	if err != nil {
		return "", err
	}
	fsMod, err := probe("fs")
	if err != nil {
		return "", err
	}
	cmdline, err := e.read("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("%w: read /proc/cmdline: %w", ErrBootSetup, err)
	}
	var args []string
	for _, a := range strings.Fields(string(cmdline)) {
		if !strings.HasPrefix(a, "BOOT_IMAGE=") && !strings.HasPrefix(a, "initrd=") {
			args = append(args, a)
		}
	}
	if e.cfg.Debug {
		args = append(args, "debug")
	}
	kernel := "/" + relTo(p.boot.Point, filepath.Join("/boot", "vmlinuz-"+e.release))
	initrd := "/" + relTo(p.boot.Point, p.initrd)
	return fmt.Sprintf(`#!/bin/sh
exec tail -n +3 $0
menuentry 'balena-migrate' --id %s {
	insmod gzio
	insmod part_msdos
	insmod part_gpt
	insmod %s
	search --no-floppy --fs-uuid --set=root %s
	echo 'balena-migrate: booting stage 2'
	linux %s %s
	initrd %s
}
`, grubEntryID, fsMod, uuid, kernel, strings.Join(args, " "), initrd), nil
}
