package stage1

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

// durable fsyncs each file and then each directory holding one, so that
// the files survive a power cut with their names.
func (r *run) durable(paths ...string) error {
	var dirs []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := r.host.Sync(r.p(p)); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		if d := filepath.Dir(p); !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := r.host.Sync(r.p(d)); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
	}
	return nil
}

// stage2Inputs are the files stage 2 reads from the old root (device paths).
func (r *run) stage2Inputs(f facts, out prepared) []string {
	in := []string{out.image.Path, r.homePath(out.backup), r.s2path, out.initrd}
	for _, n := range out.networks {
		in = append(in, r.homePath(n))
	}
	in = append(in, r.cfg.BalenaConfig)
	if f.grub != s2config.GrubNone {
		in = append(in, r.cfg.GrubCfg, r.cfg.GrubBootImg, r.cfg.GrubCoreImg)
	}
	return in
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
