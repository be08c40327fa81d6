package migrate

import (
	"context"
	"path/filepath"
	"slices"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote/upload"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// CheckEnvironment refuses to start (exit 2) without a readable migration
// environment that holds a balena-migrate binary.
func CheckEnvironment(ctx context.Context, s *config.Settings) error {
	p := s.Unit.Env()
	name := "MIG_CFG_DIR (--cfg-dir)"
	if s.Unit.CfgDir == "" {
		name = "MIG_CFG_ARCHIVE (--cfg-tgz)"
	}
	if p == "" {
		return usage.Errorf("no migration environment: give --cfg-dir DIR or --cfg-tgz FILE.tgz (MIG_CFG_DIR / MIG_CFG_ARCHIVE)")
	}
	src, err := upload.NewSource(p)
	if err != nil {
		return usage.Errorf("%s from %s: %v", name, s.Source(config.CfgDir)+s.Source(config.CfgArchive), err)
	}
	files, err := topFiles(ctx, src)
	if err != nil {
		return usage.Errorf("%s %s cannot be read: %v", name, p, err)
	}
	if s.Migrate.Pretend && s.Migrate.Rehearsal {
		return usage.Errorf("--pretend and --rehearsal exclude each other: a pre-flight never reboots a device")
	}
	// The top is an environment only when it holds balena-migrate itself
	// (or is an archive); per-device-type sub-directories are environments
	// of their own, each with its own balena-migrate.conf.
	top := files["balena-migrate"] || hasPerArch(files)
	var dirs []string
	if top {
		dirs = append(dirs, p)
	}
	if s.Unit.CfgDir != "" {
		subs, _ := filepath.Glob(filepath.Join(p, "*", "balena-migrate*"))
		for _, b := range subs {
			if d := filepath.Dir(b); !slices.Contains(dirs, d) && isEnvDir(d) {
				dirs = append(dirs, d)
			}
		}
	}
	if len(dirs) == 0 {
		return usage.Errorf("%s %s holds no balena-migrate binary at its top level or in a per-device-type sub-directory", name, p)
	}
	for _, d := range dirs {
		if err := checkMode(ctx, s, d); err != nil {
			return err
		}
	}
	return nil
}

// checkMode refuses at start-up an environment at dir whose NO_FLASH does
// not match the worker's mode (see job.checkMode, which checks each unit).
func checkMode(ctx context.Context, s *config.Settings, dir string) error {
	src, err := upload.NewSource(dir)
	if err != nil {
		return usage.Wrap(err)
	}
	env := environment{path: dir}
	conf, err := src.ReadFile(ctx, devproto.ConfName, 1<<20)
	if err == nil {
		if err := env.parseConf(conf); err != nil {
			return err
		}
	}
	return modeMismatch(s.Migrate, env)
}
