package stage1

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

// stage2Inputs are the files stage 2 reads from the old root (device paths).
func (r *run) stage2Inputs(f facts, out prepared) []string {
	in := []string{out.image.Path, r.homePath(out.backup), r.s2path, out.initrd}
	for _, n := range out.networks {
		in = append(in, r.homePath(n))
	}
	in = append(in, r.cfg.BalenaConfig)
	if f.boot.grubInstall != s2config.GrubNone {
		in = append(in, r.cfg.GrubCfg, r.cfg.GrubBootImg, r.cfg.GrubCoreImg)
	}
	return in
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
