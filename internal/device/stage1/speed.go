package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrSlowDisk marks a disk slower than MIN_WRITE_SPEED.
var ErrSlowDisk = errors.New("disk too slow")

// speedTestSize is how much the write-speed check writes (and removes).
const speedTestSize = 32 << 20

// checkWriteSpeed writes a test file to the home dir's disk (the one that
// gets flashed), syncs it and compares the rate with MIN_WRITE_SPEED (KiB/s).
func (r *run) checkWriteSpeed(ctx context.Context) error {
	if r.cfg.MinWriteSpeed <= 0 {
		return nil
	}
	p := r.p(filepath.Join(r.cfg.HomeDir, ".balena-migrate-speedtest"))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write-speed test: %w", err)
	}
	defer os.Remove(p)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for n := 0; n < speedTestSize; n += len(buf) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("write-speed test: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write-speed test: %w", err)
	}
	kibps := int64(float64(speedTestSize>>10) / time.Since(start).Seconds())
	r.log.Info("disk write speed %d KiB/s (MIN_WRITE_SPEED %d KiB/s)", kibps, r.cfg.MinWriteSpeed)
	if kibps < r.cfg.MinWriteSpeed {
		return fmt.Errorf("%w: the disk writes %d KiB/s, below MIN_WRITE_SPEED %d KiB/s: flashing would take too long or the disk is failing; replace it or lower MIN_WRITE_SPEED", ErrSlowDisk, kibps, r.cfg.MinWriteSpeed)
	}
	return nil
}
