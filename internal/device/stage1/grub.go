package stage1

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// setupGrub writes /etc/grub.d/42_balena, regenerates grub.cfg and makes
// the entry the default for the next boot only (grub-reboot).
func (r *run) setupGrub(ctx context.Context, f facts) error {
	entry, err := r.grubEntry(ctx, f)
	if err != nil {
		return err
	}
	if err := r.journal.Write("/etc/grub.d/42_balena", []byte(entry), 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	cfg := "/boot/grub/grub.cfg"
	for _, f := range []string{cfg, "/boot/grub/grubenv"} {
		if err := r.journal.Change(f); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
	}
	if _, err := r.host.Run(ctx, nil, f.progs["update-grub"]); err != nil {
		return fmt.Errorf("%w: update-grub: %w", ErrBootSetup, err)
	}
	data, err := r.read(cfg)
	if err != nil || !bytes.Contains(data, []byte("--id "+grubEntryID)) {
		return fmt.Errorf("%w: update-grub did not put the %s entry into %s: check /etc/grub.d and /etc/default/grub", ErrBootSetup, grubEntryID, cfg)
	}
	// grub.cfg with our entry must be durable before grubenv names it.
	if err := r.durable(cfg); err != nil {
		return err
	}
	if _, err := r.host.Run(ctx, nil, f.progs["grub-reboot"], grubEntryID); err != nil {
		return fmt.Errorf("%w: grub-reboot: %w", ErrBootSetup, err)
	}
	if err := r.durable("/boot/grub/grubenv"); err != nil {
		return err
	}
	env, err := r.read("/boot/grub/grubenv")
	if err != nil || !bytes.Contains(env, []byte("next_entry="+grubEntryID)) {
		return fmt.Errorf("%w: grub-reboot did not set next_entry=%s in /boot/grub/grubenv", ErrBootSetup, grubEntryID)
	}
	r.log.Info("grub boots %s once on the next boot", grubEntryID)
	return nil
}

// grubEntry renders the /etc/grub.d script with a menu entry that boots the
// running kernel with its command line and our initramfs.
func (r *run) grubEntry(ctx context.Context, f facts) (string, error) {
	p := f.boot
	probe := func(target string) (string, error) {
		out, err := r.host.Run(ctx, nil, f.progs["grub-probe"], "--target="+target, p.bootMount)
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
	cmdline, err := r.read("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("%w: read /proc/cmdline: %w", ErrBootSetup, err)
	}
	var args []string
	for _, a := range strings.Fields(string(cmdline)) {
		if !strings.HasPrefix(a, "BOOT_IMAGE=") && !strings.HasPrefix(a, "initrd=") {
			args = append(args, a)
		}
	}
	if r.cfg.Debug {
		args = append(args, "debug")
	}
	kernel := "/" + relTo(p.bootMount, filepath.Join("/boot", "vmlinuz-"+f.release))
	initrd := "/" + relTo(p.bootMount, p.initrd)
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
