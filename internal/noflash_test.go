package internal_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/stage1"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/migrate"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// The worker and stage 1 read NO_FLASH of an environment's
// balena-migrate.conf alike: where stage 1 will stop before flashing, a
// real run refuses the environment and a rehearsal takes it; where stage 1
// will flash, the other way round; a value stage 1 refuses, both refuse.
// Left out, NO_FLASH is TRUE to both (it once was FALSE to the worker,
// which then registered devices that stage 2 would never flash).
func TestWorkerAndStage1ReadNoFlashAlike(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		says       string // in the worker's refusal
	}{
		{"left out", "", "leaves NO_FLASH out, which means TRUE"},
		{"TRUE", "NO_FLASH=TRUE\n", "sets NO_FLASH=TRUE"},
		{"yes", "NO_FLASH=yes\n", "sets NO_FLASH=yes"},
		{"FALSE", "NO_FLASH=FALSE\n", "sets NO_FLASH=FALSE"},
		{"empty", "NO_FLASH=\n", "sets NO_FLASH empty, which means FALSE"},
		{"0", "NO_FLASH=0\n", "sets NO_FLASH=0"},
		{"not a boolean", "NO_FLASH=on\n", "NO_FLASH"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "balena-migrate"), []byte("#!/bin/sh\n"), 0o755)
		os.WriteFile(filepath.Join(dir, "balena-migrate.conf"), []byte("IMAGE_NAME=balena.img.gz\n"+tc.conf), 0o644)

		dev, devErr := stage1.LoadConfig(stage1.Flags{}, dir)
		check := func(rehearsal bool) error {
			s, err := config.Resolve(config.Migrate, config.Layer{Source: "test", Values: map[string]string{
				config.CfgDir: dir, config.Rehearsal: map[bool]string{true: "true", false: "false"}[rehearsal]}})
			if err != nil {
				t.Fatal(err)
			}
			return migrate.CheckEnvironment(context.Background(), s)
		}
		real, rehearsal := check(false), check(true)
		switch {
		case devErr != nil:
			if !usage.Is(real) || !usage.Is(rehearsal) || !strings.Contains(real.Error(), tc.says) || !strings.Contains(rehearsal.Error(), tc.says) {
				t.Errorf("%s: stage 1 refuses the file (%v), the worker says %v / %v", tc.name, devErr, real, rehearsal)
			}
		case dev.NoFlash:
			if real == nil || !strings.Contains(real.Error(), tc.says) || rehearsal != nil {
				t.Errorf("%s: stage 1 stops before flashing; the worker's real run says %v, its rehearsal %v", tc.name, real, rehearsal)
			}
		default:
			if real != nil || rehearsal == nil || !strings.Contains(rehearsal.Error(), tc.says) {
				t.Errorf("%s: stage 1 flashes; the worker's real run says %v, its rehearsal %v", tc.name, real, rehearsal)
			}
		}
	}
}
