package extract

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
)

// Run extracts what opts asks for and updates the migrate config.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if opts.Image == "" {
		return Result{}, errors.New("extract: --img is required")
	}
	if opts.BalenaCfg != "" {
		if _, err := os.Stat(opts.BalenaCfg); err != nil {
			return Result{}, fmt.Errorf("extract: --balena-cfg: %w", err)
		}
	}
	if opts.TmpDir == "" {
		opts.TmpDir = filepath.Dir(opts.Image)
	}
	src, err := openFlasher(opts.Flasher, opts.TmpDir, opts.Log)
	if err != nil {
		return Result{}, err
	}
	defer src.Close()
	parts, err := openParts(src.r)
	if err != nil {
		return Result{}, fmt.Errorf("flasher image %s: %w", opts.Flasher, err)
	}
	img, name, err := findImage(src.r, parts)
	if err != nil {
		return Result{}, fmt.Errorf("flasher image %s: %w", opts.Flasher, err)
	}
	res := Result{ImageSource: name, ImageSize: img.Size()}
	opts.Log("found %s (%d MiB) in %s", name, img.Size()>>20, filepath.Base(opts.Flasher))
	if res.ImageSHA256, err = fsutil.WriteGzip(ctx, opts.Image, io.NewSectionReader(img, 0, img.Size()), gzip.DefaultCompression, true); err != nil {
		return res, err
	}
	opts.Log("wrote %s (SHA-256 of the image %s)", opts.Image, res.ImageSHA256)
	if err := writeGrub(&res, src.r, parts, img, opts); err != nil {
		return res, err
	}
	if opts.Config != "" {
		if err := updateConfig(opts); err != nil {
			return res, err
		}
		opts.Log("updated %s", opts.Config)
	}
	return res, nil
}

func writeGrub(res *Result, flash io.ReaderAt, parts []blkdev.Partition, img io.ReaderAt, opts Options) error {
	if opts.GrubCfg != "" {
		data, from, err := grubCfg(flash, parts, img)
		if err != nil {
			return err
		}
		res.GrubCfgFrom = from
		if err := writeFile(opts.GrubCfg, data); err != nil {
			return err
		}
		opts.Log("wrote %s from %s", opts.GrubCfg, from)
	}
	if opts.GrubBoot == "" && opts.GrubCore == "" {
		return nil
	}
	boot, core, err := pickBootLoader(flash, parts, img)
	if err != nil {
		return err
	}
	for _, w := range []struct {
		path string
		data []byte
	}{{opts.GrubBoot, boot}, {opts.GrubCore, core}} {
		if w.path == "" {
			continue
		}
		if err := writeFile(w.path, w.data); err != nil {
			return err
		}
		opts.Log("wrote %s (%d bytes)", w.path, len(w.data))
	}
	return nil
}

func pickBootLoader(flash io.ReaderAt, parts []blkdev.Partition, img io.ReaderAt) ([]byte, []byte, error) {
	if imgParts, err := openParts(img); err == nil {
		if boot, core, ok, err := bootLoader(img, imgParts); err != nil || ok {
			return boot, core, err
		}
	}
	boot, core, ok, err := bootLoader(flash, parts)
	if err == nil && !ok {
		err = fmt.Errorf("grub boot.img/core.img (boot code before the first partition): %w", ErrNotFound)
	}
	return boot, core, err
}

func writeFile(path string, data []byte) error {
	if err := fsutil.WriteFileAtomic(path, filepath.Dir(path), data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// updateConfig sets IMAGE_NAME, GRUB_CFG, GRUB_BOOT_IMG, GRUB_CORE_IMG and
// BALENA_CONFIG in the migrate config, keeping every other line's value.
// Paths in the config's directory are written as bare names (the config
// resolves them relative to its home dir), others as absolute paths.
func updateConfig(opts Options) error {
	cfg := envfile.New()
	if _, err := os.Stat(opts.Config); err == nil {
		if cfg, err = envfile.Read(opts.Config); err != nil {
			return fmt.Errorf("migrate config %s: %w", opts.Config, err)
		}
	}
	for _, kv := range []struct{ key, path string }{{"IMAGE_NAME", opts.Image}, {"GRUB_CFG", opts.GrubCfg},
		{"GRUB_BOOT_IMG", opts.GrubBoot}, {"GRUB_CORE_IMG", opts.GrubCore}, {"BALENA_CONFIG", opts.BalenaCfg}} {
		if kv.path == "" {
			continue
		}
		if err := cfg.Set(kv.key, configPath(opts.Config, kv.path)); err != nil {
			return fmt.Errorf("migrate config: %w", err)
		}
	}
	data, err := cfg.Marshal()
	if err != nil {
		return fmt.Errorf("migrate config: %w", err)
	}
	if err := fsutil.WriteFileAtomic(opts.Config, filepath.Dir(opts.Config), data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", opts.Config, err)
	}
	return nil
}

func configPath(config, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if dir, err := filepath.Abs(filepath.Dir(config)); err == nil && filepath.Dir(abs) == dir {
		return filepath.Base(abs)
	}
	return abs
}
