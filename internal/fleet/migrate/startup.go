package migrate

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
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
	dirs := envDirs(s, files)
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

// envDirs lists the environments under the environment setting, whose
// top holds files: the top itself when it holds balena-migrate (or is an
// archive), and each per-device-type or per-architecture sub-directory,
// an environment of its own with its own balena-migrate.conf.
func envDirs(s *config.Settings, files map[string]bool) []string {
	p := s.Unit.Env()
	var dirs []string
	if files["balena-migrate"] || hasPerArch(files) {
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
	return dirs
}

// ImageType is a device type an environment registers its devices as.
type ImageType struct {
	Slug string // as the environment names it
	Env  string // the environment (directory or archive)
	From string // what names it: its sub-directory, or its IMAGE_NAME
}

// ImageTypes lists the device types the environments register devices
// as, chosen as each unit's registration chooses them: a sub-directory
// named after a type names it, otherwise the image IMAGE_NAME of its
// balena-migrate.conf names. An environment that names none registers
// its devices as the fleet's type and is not listed. CheckEnvironment
// has accepted the settings.
func ImageTypes(ctx context.Context, s *config.Settings) ([]ImageType, error) {
	src, err := upload.NewSource(s.Unit.Env())
	if err != nil {
		return nil, usage.Wrap(err)
	}
	files, err := topFiles(ctx, src)
	if err != nil {
		return nil, usage.Wrap(err)
	}
	var out []ImageType
	for _, d := range envDirs(s, files) {
		if base := filepath.Base(d); d != s.Unit.Env() {
			if _, ok := devicetype.Lookup(base); ok {
				out = append(out, ImageType{Slug: base, Env: d, From: "its sub-directory name"})
				continue
			}
		}
		src, err := upload.NewSource(d)
		if err != nil {
			return nil, usage.Wrap(err)
		}
		conf, err := src.ReadFile(ctx, devproto.ConfName, 1<<20)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, usage.Errorf("%s in %s: %w", devproto.ConfName, d, err)
		}
		env := environment{path: d}
		if err := env.parseConf(conf); err != nil {
			return nil, err
		}
		if slug, ok := devicetype.SlugFromName(env.image); ok {
			out = append(out, ImageType{Slug: slug, Env: d, From: "IMAGE_NAME " + env.image})
		}
	}
	return out, nil
}
