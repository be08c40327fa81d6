package stage2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/flash"
	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
)

// Mount points stage 2 uses besides those in the config.
const (
	origBootMnt = "/balena-migrate-boot"
	logMnt      = "/balena-migrate-log"
	logName     = "balena-migrate.log"
)

// staged is what stageFiles copied into MIGRATE_TMP (paths in the initramfs).
type staged struct {
	image     string
	imageSize int64 // decompressed, known after verifyImage
	backup    string
	config    string
	network   []string
	grubCfg   string
	grubBoot  string
	grubCore  string
}

// checkRestoreSource makes sure a backup is what stage 1 saved before it
// replaces a boot file: a lost or torn backup written over config.txt would
// leave a board that boots nothing.
func checkRestoreSource(path, wantSHA string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("its backup: %w", err)
	}
	if len(data) == 0 {
		return fmt.Errorf("its backup %s is empty", path)
	}
	if sum := sha256.Sum256(data); wantSHA != "" && hex.EncodeToString(sum[:]) != wantSHA {
		return fmt.Errorf("its backup %s is not what stage 1 saved (SHA-256 differs)", path)
	}
	return nil
}

// restoreBootFiles puts the original boot configuration back (Raspberry Pi
// config.txt/cmdline.txt, BeagleBone uEnv.txt) and removes the files added
// for one boot (tryboot.txt), so that whatever happens next the old system
// boots normally again. Failures are logged, not fatal.
func (r *run) restoreBootFiles() {
	c := r.cfg
	if len(c.RestoreBootFiles) == 0 && len(c.RemoveBootFiles) == 0 {
		return
	}
	if c.MountBoot {
		r.restoreFromPartition()
		return
	}
	restore, err := writableRoot(c.RootMnt)
	if err != nil {
		r.log.Warnf("restore boot files: %v", err)
	}
	defer restore()
	r.restoreUnder(c.RootMnt)
}

// restoreFromPartition mounts ORIG_BOOT_PART, the partition holding the
// boot files (a separate boot partition, or the root filesystem before it is
// mounted), and restores them there.
func (r *run) restoreFromPartition() {
	c := r.cfg
	if err := mount(c.OrigBootPart, origBootMnt, c.OrigBootFSType, 0); err != nil {
		r.log.Warnf("restore boot files: %v", err)
		return
	}
	defer func() {
		if err := unmount(origBootMnt); err != nil {
			r.log.Warnf("restore boot files: %v", err)
		}
	}()
	r.restoreUnder(origBootMnt)
}

// restoreUnder removes the files added for one boot and copies each
// checked backup over its original; the paths are relative to base.
func (r *run) restoreUnder(base string) {
	for _, f := range r.cfg.RemoveBootFiles {
		p := filepath.Join(base, f)
		err := os.Remove(p)
		if err == nil {
			err = fsutil.SyncDir(filepath.Dir(p))
			r.log.Infof("removed %s, added by stage 1 for one boot", f)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Warnf("remove %s: %v", f, err)
		}
	}
	for _, p := range r.cfg.RestoreBootFiles {
		src, dst := filepath.Join(base, p.Backup), filepath.Join(base, p.Original)
		if err := checkRestoreSource(src, p.SHA256); err != nil {
			r.log.Warnf("not restoring %s: %v; it keeps the balena-migrate change", p.Original, err)
			continue
		}
		if _, err := copyFile(src, dst, 0o644); err != nil {
			r.log.Warnf("restore boot files: %v", err)
			continue
		}
		r.log.Infof("restored %s from %s", p.Original, p.Backup)
	}
}

// setupLogDrive mounts LOG_DRIVE and mirrors the log to it. Failures are
// logged, not fatal: the log stays in RAM and goes to resin-data later.
func (r *run) setupLogDrive() {
	if r.cfg.LogDrive == "" {
		r.log.Infof("logging to RAM until resin-data is mounted")
		return
	}
	fstype := r.cfg.LogFSType
	if fstype == "" {
		fstype = "ext4" // the original tool's default
	}
	if err := mount(r.cfg.LogDrive, logMnt, fstype, 0); err != nil {
		r.log.Warnf("log drive: %v; logging to RAM", err)
		return
	}
	r.logDrive = true
	if err := r.log.MirrorTo(filepath.Join(logMnt, "migrate.log")); err != nil {
		r.log.Warnf("log drive: %v; logging to RAM", err)
		r.closeLogDrive()
		return
	}
	r.log.Infof("logging to %s (migrate.log)", r.cfg.LogDrive)
}

// closeLogDrive syncs the log file on LOG_DRIVE and unmounts it.
func (r *run) closeLogDrive() {
	if err := r.log.StopMirror(); err != nil {
		r.log.Warnf("log drive: %v", err)
	}
	if !r.logDrive {
		return
	}
	if err := unmount(logMnt); err != nil {
		r.log.Warnf("log drive: %v", err)
	}
	r.logDrive = false
}

// stageFiles copies image, backup, config.json, network and grub files from
// the old root into MIGRATE_TMP, after checking they fit in RAM.
func (r *run) stageFiles() error {
	c := r.cfg
	type item struct {
		key, name string
		dst       *string
	}
	items := []item{{"IMAGE_FILE", c.ImageFile, &r.files.image}, {"BACKUP_FILE", c.BackupFile, &r.files.backup},
		{"BALENA_CONFIG", c.BalenaConfig, &r.files.config}, {"GRUB_CFG", c.GrubCfg, &r.files.grubCfg},
		{"GRUB_BOOT_IMG", c.GrubBootImg, &r.files.grubBoot}, {"GRUB_CORE_IMG", c.GrubCoreImg, &r.files.grubCore}}
	r.files.network = make([]string, len(c.NetworkConfigs))
	for i, n := range c.NetworkConfigs {
		items = append(items, item{"NETWORK_CONFIGS", n, &r.files.network[i]})
	}
	var total int64
	for _, it := range items {
		if it.name == "" {
			continue
		}
		st, err := os.Stat(c.HomeFile(it.name))
		if err != nil {
			return fmt.Errorf("%s: %w", it.key, err)
		}
		total += st.Size()
	}
	if err := r.checkMemory(total); err != nil {
		return err
	}
	for _, it := range items {
		if it.name == "" {
			continue
		}
		dst := filepath.Join(c.MigrateTmp, path.Base(it.name))
		if it.key == "NETWORK_CONFIGS" {
			dst = filepath.Join(c.MigrateTmp, "system-connections", path.Base(it.name))
		}
		n, err := copyFileProgress(c.HomeFile(it.name), dst, 0o600, r.progress)
		if err != nil {
			return fmt.Errorf("%s: %w", it.key, err)
		}
		*it.dst = dst
		r.log.Infof("copied %s (%s) to %s", it.name, humanBytes(n), dst)
	}
	return nil
}

func (r *run) checkMemory(need int64) error {
	avail, err := memAvailable()
	if err != nil {
		return fmt.Errorf("check memory: %w", err)
	}
	r.log.Infof("memory: %s available, %s to copy, %s must stay free (MEM_MIN_FREE)",
		humanBytes(avail), humanBytes(need), humanBytes(r.cfg.MemMinFree))
	if avail-need < r.cfg.MemMinFree {
		return fmt.Errorf("not enough memory: %s available, the files need %s and MEM_MIN_FREE keeps %s free",
			humanBytes(avail), humanBytes(need), humanBytes(r.cfg.MemMinFree))
	}
	return nil
}

// verifyImage decompresses the staged image completely and checks its SHA-256.
func (r *run) verifyImage(ctx context.Context) error {
	n, err := flash.VerifyImage(ctx, r.files.image, r.cfg.ImageSHA256, flash.Options{Log: r.progressLog})
	if err != nil {
		return fmt.Errorf("image check failed: %w", err)
	}
	r.files.imageSize = n
	f, err := os.Open(r.cfg.BootDev)
	if err != nil {
		return fmt.Errorf("BOOT_DEV: %w", err)
	}
	defer f.Close()
	size, err := flash.DeviceSize(f)
	if err != nil {
		return fmt.Errorf("BOOT_DEV: %w", err)
	}
	if size < n {
		return fmt.Errorf("BOOT_DEV %s holds %s, the image needs %s", r.cfg.BootDev, humanBytes(size), humanBytes(n))
	}
	r.log.Infof("image verified: %s, SHA-256 %s; %s has %s", humanBytes(n), r.cfg.ImageSHA256, r.cfg.BootDev, humanBytes(size))
	return nil
}

// badblocks runs a read-only `badblocks` scan of the range the image will
// occupy when MAX_BADBLOCKS is set, and fails when it finds more than allowed.
func (r *run) badblocks(ctx context.Context) error {
	if r.cfg.MaxBadblocks == "" {
		return nil
	}
	bin, err := exec.LookPath("badblocks")
	if err != nil {
		return fmt.Errorf("MAX_BADBLOCKS is set but badblocks is not in the initramfs (stage 1 puts it there): %w", err)
	}
	const bs = 4096
	blocks := (r.files.imageSize + bs - 1) / bs
	r.log.Infof("scanning %d blocks of %s for bad blocks", blocks, r.cfg.BootDev)
	cmd := exec.CommandContext(ctx, bin, "-b", fmt.Sprint(bs), r.cfg.BootDev, fmt.Sprint(blocks-1))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err = cmd.Start()
	if err == nil {
		// the scan logs nothing for minutes: its reads are the progress
		done := make(chan struct{})
		go r.watchReads(cmd.Process.Pid, done)
		err = cmd.Wait()
		close(done)
	}
	out := stdout.Bytes()
	if err != nil {
		return fmt.Errorf("badblocks %s: %w", r.cfg.BootDev, err)
	}
	found := int64(len(strings.Fields(string(out))))
	limit, pct, _ := s2config.ParseBadblocks(r.cfg.MaxBadblocks)
	if pct {
		limit = limit * float64(blocks) / 100
	}
	if float64(found) > limit {
		return fmt.Errorf("%s has %d bad blocks, MAX_BADBLOCKS allows %s", r.cfg.BootDev, found, r.cfg.MaxBadblocks)
	}
	r.log.Infof("%d bad blocks found (MAX_BADBLOCKS=%s)", found, r.cfg.MaxBadblocks)
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
