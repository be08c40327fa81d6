package stage1

import (
	"fmt"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/ext4"
)

// The image is checked as stage 2 will use it, before anything is
// registered: stage 2 finds resin-boot (vfat) and resin-data (ext4) in the
// flashed table by their labels and writes config.json, the network files,
// the backup and its log into them.

// logReserve is what stage 2's log and the file system's own bookkeeping
// need on resin-data besides the backup.
const logReserve = 1 << 20

// stage2Partitions finds resin-boot and resin-data in the image streamed
// through heads, by blkdev.FindLabel as stage 2 does, and returns
// resin-data's superblock. A flasher image is named as one.
func stage2Partitions(heads *blkdev.Heads) (ext4.Superblock, error) {
	if err := heads.Err(); err != nil {
		return ext4.Superblock{}, fmt.Errorf("partition table: %w", err)
	}
	parts, err := blkdev.ReadTable(heads)
	if err != nil {
		return ext4.Superblock{}, fmt.Errorf("partition table: %w", err)
	}
	var flasher []string
	for _, p := range parts {
		if p.Extended {
			continue
		}
		if fs, err := blkdev.Probe(heads, p.Start); err == nil && strings.HasPrefix(fs.Label, "flash-") {
			flasher = append(flasher, fs.Label)
		}
	}
	if len(flasher) > 0 {
		return ext4.Superblock{}, fmt.Errorf("is a balenaOS flasher image (partitions %s): it installs balenaOS from a USB stick and has no resin-boot and resin-data for stage 2 to fill; take the image out of it with `balena-migrate extract --img OUT.img.gz FLASHER` and set IMAGE_NAME to OUT.img.gz",
			strings.Join(flasher, ", "))
	}
	var data blkdev.Located
	for _, want := range []struct{ label, fstype string }{{"resin-boot", blkdev.FSVfat}, {"resin-data", blkdev.FSExt4}} {
		loc, err := blkdev.FindLabel(heads, parts, want.label)
		if err != nil {
			return ext4.Superblock{}, fmt.Errorf("is not a balenaOS image stage 2 can fill: %w", err)
		}
		if loc.Type != want.fstype {
			return ext4.Superblock{}, fmt.Errorf("is not a balenaOS image stage 2 can fill: %s is %q, not %s", want.label, loc.Type, want.fstype)
		}
		data = loc
	}
	sb := make([]byte, 1024)
	if _, err := heads.ReadAt(sb, data.Start+1024); err != nil {
		return ext4.Superblock{}, fmt.Errorf("resin-data: %w", err)
	}
	return ext4.ParseSuperblock(sb)
}

// checkDataMountable refuses an image whose resin-data this kernel (the
// one the stage-2 boot runs) cannot mount read-write.
func checkDataMountable(img Image, release string) error {
	if bad := img.Data.Unmountable(release); len(bad) > 0 {
		return fmt.Errorf("%w: resin-data in %s uses ext4 features that kernel %s cannot mount: %s; stage 2 could not write the backup and its log there: use a balenaOS image made for this kernel, or update the kernel first",
			ErrImage, img.Path, release, strings.Join(bad, ", "))
	}
	return nil
}

// checkBackupFits refuses a backup that resin-data in the image has no
// room for (balenaOS grows resin-data only on its first boot).
func checkBackupFits(img Image, backup int64) error {
	if need := backup + logReserve; need > img.Data.FreeBytes {
		return fmt.Errorf("%w: the backup (%d MiB) and stage 2's log do not fit resin-data in %s, which has %d MiB free until balenaOS grows it on its first boot: make the backup smaller (BACKUP_DIRECTORIES, BACKUP_SCRIPT)",
			errNoSpace, (backup+1<<20-1)>>20, img.Path, img.Data.FreeBytes>>20)
	}
	return nil
}
