package stage2

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/flash"
)

// Labels of the balenaOS partitions stage 2 writes to.
const (
	bootLabel = "resin-boot"
	dataLabel = "resin-data"
)

// newParts are the balenaOS partitions found after flashing.
type newParts struct {
	boot, data string           // device nodes
	bootPart   blkdev.Partition // resin-boot in the new table
}

func (r *run) flash(ctx context.Context) error {
	in, err := os.Open(r.files.image)
	if err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	defer in.Close()
	r.log.Infof("flashing %s (%s) to %s", filepath.Base(r.files.image), humanBytes(r.files.imageSize), r.cfg.BootDev)
	_, err = flash.Image(ctx, r.cfg.BootDev, in, r.cfg.ImageSHA256, flash.Options{Size: r.files.imageSize, Log: r.progressLog})
	if err != nil {
		return fmt.Errorf("flash failed: %w", err)
	}
	return r.clearTail()
}

// clearTail removes what the old system left at the end of the disk (its
// backup GPT) before the kernel reads the new table.
func (r *run) clearTail() error {
	disk, err := os.OpenFile(r.cfg.BootDev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("clear the end of %s: %w", r.cfg.BootDev, err)
	}
	defer disk.Close()
	stale, err := blkdev.ClearTail(disk, r.files.imageSize)
	if err != nil {
		return err
	}
	if stale {
		r.log.Infof("cleared the old backup GPT at the end of %s", r.cfg.BootDev)
	}
	return nil
}

// locatePartitions makes the kernel see the new table and finds resin-boot
// and resin-data by the labels in their superblocks. Without resin-boot
// the flashed disk cannot come online; a missing resin-data only costs
// the backup and the log (balenaOS makes a new one), so it is a warning.
func (r *run) locatePartitions(ctx context.Context) (newParts, error) {
	disk, err := os.Open(r.cfg.BootDev)
	if err != nil {
		return newParts{}, err
	}
	defer disk.Close()
	parts, err := blkdev.ReadTable(disk)
	if err != nil {
		return newParts{}, fmt.Errorf("partition table of the flashed %s: %w", r.cfg.BootDev, err)
	}
	nodes, err := blkdev.MakeNodes(ctx, r.cfg.BootDev, parts, r.log.Infof)
	if err != nil {
		return newParts{}, fmt.Errorf("partition nodes of %s: %w", r.cfg.BootDev, err)
	}
	var out newParts
	for _, want := range []struct {
		label, fstype string
		node          *string
	}{{bootLabel, blkdev.FSVfat, &out.boot}, {dataLabel, blkdev.FSExt4, &out.data}} {
		loc, err := blkdev.FindLabel(disk, parts, want.label)
		if err == nil && loc.Type != want.fstype {
			err = fmt.Errorf("%s is %q, expected %s", want.label, loc.Type, want.fstype)
		}
		if err != nil && want.label == dataLabel {
			r.log.Warnf("flashed %s: %v: the backup and this log will not be kept", r.cfg.BootDev, err)
			continue
		}
		if err != nil {
			return newParts{}, fmt.Errorf("flashed %s: %w", r.cfg.BootDev, err)
		}
		*want.node = nodes[loc.Number]
		if want.label == bootLabel {
			out.bootPart = loc.Partition
		}
		r.log.Infof("found %s (%s) on %s", want.label, loc.Type, *want.node)
	}
	return out, nil
}

// writeBoot mounts resin-boot alone and writes what balenaOS needs to come
// online (config.json, the network files) and the grub files there, syncs
// them and unmounts it again, before anything touches resin-data.
func (r *run) writeBoot(ctx context.Context, node string) (err error) {
	dir := r.cfg.BootMntDir
	if err := mount(node, dir, blkdev.FSVfat, 0); err != nil {
		return err
	}
	defer func() {
		if uerr := unmount(dir); err == nil && uerr != nil {
			err = uerr
		}
	}()
	var todo [][2]string
	if r.files.config != "" {
		todo = append(todo, [2]string{r.files.config, filepath.Join(dir, "config.json")})
	}
	for _, n := range r.files.network {
		todo = append(todo, [2]string{n, filepath.Join(dir, "system-connections", filepath.Base(n))})
	}
	for _, d := range todo {
		n, err := copyFile(d[0], d[1], 0o600)
		if err != nil {
			return err
		}
		r.log.Infof("wrote %s (%s)", d[1], humanBytes(n))
	}
	if err := r.grubFiles(ctx); err != nil {
		return err
	}
	r.efiLoader = findEFILoader(dir)
	for _, d := range []string{filepath.Join(dir, "system-connections"), filepath.Join(dir, "EFI", "BOOT"), filepath.Join(dir, "grub"), dir} {
		if err := syncIfExists(d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	r.log.Infof("resin-boot written and synced; unmounting it")
	return nil
}

// writeData mounts resin-data and writes the backup; it stays mounted for
// the log, which closeNew saves last.
func (r *run) writeData(node string) error {
	if node == "" {
		return fmt.Errorf("the flashed disk has no %s", dataLabel)
	}
	if !r.mounted {
		if err := mount(node, r.cfg.DataMntDir, blkdev.FSExt4, 0); err != nil {
			return err
		}
		r.mounted = true
		r.log.Infof("mounted resin-data on %s", r.cfg.DataMntDir)
	}
	if r.files.backup != "" {
		dst := filepath.Join(r.cfg.DataMntDir, filepath.Base(r.files.backup))
		n, err := copyFile(r.files.backup, dst, 0o600)
		if err != nil {
			return err
		}
		r.log.Infof("wrote %s (%s)", dst, humanBytes(n))
	}
	if err := syncIfExists(r.cfg.DataMntDir); err != nil {
		return fmt.Errorf("sync %s: %w", r.cfg.DataMntDir, err)
	}
	return nil
}

// closeNew saves the log to resin-data and unmounts it, if it is mounted.
func (r *run) closeNew() {
	if !r.mounted {
		return
	}
	p := filepath.Join(r.cfg.DataMntDir, logName)
	r.log.Infof("saving this log to resin-data as %s", logName)
	if err := r.log.SaveTo(p); err != nil {
		r.log.Errorf("%v", err)
	}
	if err := unmount(r.cfg.DataMntDir); err != nil {
		r.log.Errorf("%v", err)
	}
	r.mounted = false
}

func syncIfExists(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
