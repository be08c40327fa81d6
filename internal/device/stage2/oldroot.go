package stage2

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fsutil"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"golang.org/x/sys/unix"
)

// saveLogToOldRoot writes the log to HOME_DIR on the old root unless it
// already goes to LOG_DRIVE: a stage 2 that stopped before the point of no
// return leaves it next to the image, for the operator and the fleet
// worker (devproto.Stage2LogName). Failures are logged: the old system boots
// either way.
func (r *run) saveLogToOldRoot() {
	if r.logDrive {
		return
	}
	restore, err := writableRoot(r.cfg.RootMnt)
	if err != nil {
		r.log.Warnf("cannot keep this log on the old root: %v", err)
		return
	}
	defer restore()
	p := filepath.Join(r.cfg.RootMnt, r.cfg.HomeDir, devproto.Stage2LogName)
	r.log.Infof("saving this log to %s on the old root", filepath.Join(r.cfg.HomeDir, devproto.Stage2LogName))
	if err := r.log.SaveTo(p); err != nil {
		r.log.Warnf("cannot keep this log on the old root: %v", err)
	}
}

// writableRoot remounts the old root read-write if initramfs-tools mounted
// it read-only; restore puts it back as it was. A directory that is not a
// mount point (tests) is used as it is.
func writableRoot(root string) (restore func(), err error) {
	ro, mounted, err := mountReadOnly(root)
	if err != nil || !mounted || !ro {
		return func() {}, err
	}
	if err := unix.Mount("", root, "", unix.MS_REMOUNT, ""); err != nil {
		return func() {}, fmt.Errorf("remount %s read-write: %w", root, err)
	}
	return func() { unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_RDONLY, "") }, nil
}

// mountReadOnly reports whether dir is a mount point and mounted read-only.
func mountReadOnly(dir string) (ro, mounted bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	clean := filepath.Clean(dir)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 5 && fields[4] == clean {
			mounted = true
			ro = false
			for _, o := range strings.Split(fields[5], ",") {
				ro = ro || o == "ro"
			}
		}
	}
	return ro, mounted, sc.Err()
}

// cleanUp removes, on the old root (writable), what stage 1 installed for
// the stage-2 boot (CLEANUP_FILES): a stage 2 that hands back to the old
// system leaves no grub script that a later update-grub would turn into a
// boot entry flashing an old image. A file on another partition (a
// separate /boot) is left; it is unreachable without the script.
func (r *run) cleanUp() {
	if len(r.cfg.CleanupFiles) == 0 {
		return
	}
	restore, err := writableRoot(r.cfg.RootMnt)
	if err != nil {
		r.log.Warnf("cannot remove what stage 1 installed: %v", err)
		return
	}
	defer restore()
	for _, f := range r.cfg.CleanupFiles {
		p := r.cfg.OldRoot(f)
		err := os.Remove(p)
		switch {
		case err == nil:
			fsutil.SyncDir(filepath.Dir(p))
			r.log.Infof("removed %s, installed by stage 1 for the stage-2 boot", f)
		case !errors.Is(err, fs.ErrNotExist):
			r.log.Warnf("remove %s: %v", f, err)
		}
	}
}
