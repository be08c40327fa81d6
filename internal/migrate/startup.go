package migrate

import (
	"context"

	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/remote/upload"
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
	if files["balena-migrate"] || hasPerArch(files) {
		return nil
	}
	return usage.Errorf("%s %s holds no balena-migrate binary at its top level", name, p)
}
