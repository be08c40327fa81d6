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
	boot, data string // device nodes
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
// and resin-data by the labels in their superblocks.
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
		if err != nil {
			return newParts{}, fmt.Errorf("flashed %s: %w", r.cfg.BootDev, err)
		}
		if loc.Type != want.fstype {
			return newParts{}, fmt.Errorf("flashed %s: %s is %q, expected %s", r.cfg.BootDev, want.label, loc.Type, want.fstype)
		}
		*want.node = nodes[loc.Number]
		r.log.Infof("found %s (%s) on %s", want.label, loc.Type, *want.node)
	}
	return out, nil
}

func (r *run) mountNew(p newParts) error {
	if err := mount(p.boot, r.cfg.BootMntDir, blkdev.FSVfat, 0); err != nil {
		return err
	}
	if err := mount(p.data, r.cfg.DataMntDir, blkdev.FSExt4, 0); err != nil {
		unmount(r.cfg.BootMntDir)
		return err
	}
	r.mounted = true
	r.log.Infof("mounted resin-boot on %s, resin-data on %s", r.cfg.BootMntDir, r.cfg.DataMntDir)
	return nil
}

// closeNew saves the log to resin-data and unmounts both partitions, if
// they were mounted.
func (r *run) closeNew() {
	if !r.mounted {
		return
	}
	p := filepath.Join(r.cfg.DataMntDir, logName)
	r.log.Infof("saving this log to resin-data as %s", logName)
	if err := r.log.SaveTo(p); err != nil {
		r.log.Errorf("%v", err)
	}
	for _, dir := range []string{r.cfg.DataMntDir, r.cfg.BootMntDir} {
		if err := unmount(dir); err != nil {
			r.log.Errorf("%v", err)
		}
	}
	r.mounted = false
}

// placeFiles writes config.json and the network files to resin-boot and the
// backup to resin-data.
func (r *run) placeFiles() error {
	type dest struct{ src, dst string }
	var todo []dest
	if r.files.config != "" {
		todo = append(todo, dest{r.files.config, filepath.Join(r.cfg.BootMntDir, "config.json")})
	}
	for _, n := range r.files.network {
		todo = append(todo, dest{n, filepath.Join(r.cfg.BootMntDir, "system-connections", filepath.Base(n))})
	}
	if r.files.backup != "" {
		todo = append(todo, dest{r.files.backup, filepath.Join(r.cfg.DataMntDir, filepath.Base(r.files.backup))})
	}
	for _, d := range todo {
		n, err := copyFile(d.src, d.dst, 0o600)
		if err != nil {
			return err
		}
		r.log.Infof("wrote %s (%s)", d.dst, humanBytes(n))
	}
	for _, dir := range []string{filepath.Join(r.cfg.BootMntDir, "system-connections"), r.cfg.BootMntDir, r.cfg.DataMntDir} {
		if err := syncIfExists(dir); err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return nil
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
