package stage2

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
)

// findBootDev makes sure the disk about to be flashed is the one the old
// root lives on. Kernel names can change between boots (a second disk, a
// USB stick), so BOOT_DEV as stage 1 saw it is only a hint: the disk is the
// one holding the mounted old root, and it must have the identity stage 1
// recorded. Any doubt stops stage 2 before the point of no return.
func (r *run) findBootDev() error {
	c := r.cfg
	if c.DiskTableID == "" {
		r.log.Warnf("the stage-2 config records no disk identity: flashing BOOT_DEV=%s as named", c.BootDev)
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(c.RootMnt, &st); err != nil {
		return fmt.Errorf("find the old root's disk: %w", err)
	}
	sys, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return fmt.Errorf("the old root %s is not on a block device (%d:%d): %w", c.RootMnt, unix.Major(st.Dev), unix.Minor(st.Dev), err)
	}
	diskDir, start, err := blkdev.SysDisk(sys)
	if err != nil {
		return fmt.Errorf("find the old root's disk: %w", err)
	}
	dev := "/dev/" + filepath.Base(diskDir)
	size, err := blkdev.SysSize(diskDir)
	if err != nil {
		return fmt.Errorf("size of %s: %w", dev, err)
	}
	f, err := os.Open(dev)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	table, err := blkdev.TableID(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	got := blkdev.Identity{Size: size, TableID: table, RootStart: start, Serial: blkdev.SysSerial(diskDir)}
	want := blkdev.Identity{Size: c.DiskSize, TableID: c.DiskTableID, RootStart: c.RootPartStart, Serial: c.DiskSerial}
	if want.Serial == "" {
		// Stage 1 saw no serial number (or did not record one): the rest
		// must match.
		got.Serial = ""
	}
	if got != want {
		return fmt.Errorf("the old root is on %s (%s), which is not the disk stage 1 recorded as %s (%s): refusing to flash", dev, got, c.BootDev, want)
	}
	if dev != c.BootDev {
		r.log.Warnf("BOOT_DEV %s of stage 1 is now %s (disk names changed between boots); flashing %s, which holds the old root", c.BootDev, dev, dev)
		r.cfg.BootDev = dev
	} else {
		r.log.Infof("%s holds the old root and has the identity stage 1 recorded (%s)", dev, got)
	}
	return nil
}

// checkSectorSize refuses a disk with other than 512-byte logical sectors
// (4Kn): the flashed image's partitions would not be where its table says.
// Stage 1 refuses it too; this covers a disk swapped in between.
func (r *run) checkSectorSize() error {
	f, err := os.Open(r.cfg.BootDev)
	if err != nil {
		return fmt.Errorf("BOOT_DEV: %w", err)
	}
	defer f.Close()
	if err := blkdev.CheckSectorSize(f); err != nil {
		return fmt.Errorf("refusing to flash: %w", err)
	}
	return nil
}
