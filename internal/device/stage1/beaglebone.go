package stage1

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// A BeagleBone's u-boot loads the kernel and initrd.img-<release> named by
// uEnv.txt's uname_r from /boot. Stage 1 puts its initramfs in place of that
// initrd (after a timestamped backup, with one of uEnv.txt) and stage 2 puts
// the old one back: until then every boot starts stage 2.

// beagleBoneBoot replaces initrd.img-<release> (and edits uEnv.txt for DEBUG).
type beagleBoneBoot struct{}

var _ bootSetup = beagleBoneBoot{}

func (beagleBoneBoot) plan(e bootEnv) (bootPlan, error) {
	p := e.newPlan()
	initrd := "initrd.img-" + e.release
	p.initrd = filepath.Join(p.dir, initrd)
	// An earlier run's initramfs in place of the initrd would be backed up
	// and restored as if it were the original.
	installed, err := e.read(p.initrd)
	ours, err2 := e.read(filepath.Join(e.cfg.HomeDir, initramfsName(e.release)))
	if err == nil && err2 == nil && bytes.Equal(installed, ours) {
		return p, fmt.Errorf("%w: %s/%s is the balena-migrate initramfs of an earlier run: put back the original from its timestamped backup, then try again", ErrBootSetup, p.dir, initrd)
	}
	return p, e.backUp(&p, "beaglebone", "uEnv.txt", initrd)
}

// apply: the initramfs is already in place of initrd.img-<release>; DEBUG
// adds debug to uEnv.txt's cmdline.
func (beagleBoneBoot) apply(_ context.Context, e bootEnv, p bootPlan) error {
	if !e.cfg.Debug {
		return nil
	}
	return e.editFile(filepath.Join(p.dir, "uEnv.txt"), func(s string) string {
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

// undo: stage 2 copies uEnv.txt and the original initrd back.
func (beagleBoneBoot) undo(p bootPlan) bootUndo { return p.putBack() }
