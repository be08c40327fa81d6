package stage1

import (
	"fmt"
	"path"
)

// Stage 2 reads the migration directory from the old root, which the
// initramfs mounts read-only and alone, and finds the disk to flash from
// that mount; grub clears its one-shot choice by writing its environment
// block in /boot. What of this a file system layout would break is refused
// here, before anything is registered.

// unsupportedFS are file systems stage 2 and grub cannot work with: the
// device number of a btrfs or ZFS mount names no disk, and grub refuses to
// write its environment block (grub-reboot's one shot) on either, so the
// stage-2 entry would boot again and again.
var unsupportedFS = map[string]string{
	"btrfs": "btrfs", "zfs": "ZFS",
}

// checkMounts refuses a root or boot file system stage 2 or grub cannot use
// (btrfs, ZFS), a separate /usr (initramfs-tools mounts it from the disk
// being flashed) and a HOME_DIR outside the root file system (stage 2
// would not find the image there, nor leave its log).
func (f files) checkMounts(l BootLayout, home string) error {
	for _, d := range []struct {
		what string
		disk Disk
	}{{"/", l.Root}, {l.BootDir, l.Boot}} {
		if name, bad := unsupportedFS[d.disk.FSType]; bad {
			return fmt.Errorf("%w: %s is on %s (%s): stage 2 cannot find the disk behind a %s file system and grub cannot clear its one-shot boot choice there; balena-migrate migrates systems on ext4 (or another file system grub writes to) only",
				ErrBootLayout, d.what, name, d.disk.Source, name)
		}
	}
	data, err := f.read("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read /proc/self/mountinfo: %w: is /proc mounted?", err)
	}
	mounts := parseMountinfo(string(data))
	if m, ok := mountOf(mounts, "/usr"); ok && m.Point == "/usr" {
		return fmt.Errorf("%w: /usr is a file system of its own (%s, %s), which the stage-2 boot would mount from the disk it flashes: merge /usr into / first", ErrBootLayout, m.Source, m.FSType)
	}
	if m, ok := mountOf(mounts, path.Clean(home)); ok && m.Point != l.Root.Point {
		return fmt.Errorf("%w: HOME_DIR %s is on %s (%s, mounted on %s), not on the root file system: stage 2 mounts only / and would find neither the image nor a place for its log; put the migration directory on / (--home or HOME_DIR)",
			ErrBootLayout, home, m.Source, m.FSType, m.Point)
	}
	return nil
}
