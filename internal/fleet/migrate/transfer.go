package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote/upload"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// source returns the migration environment at path, hashed once per worker.
func (m *Migrator) source(path string) (*upload.Source, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if src, ok := m.sources[path]; ok {
		return src, nil
	}
	src, err := upload.NewSource(path)
	if err != nil {
		return nil, usage.Errorf("migration environment %s: %w", path, err)
	}
	if m.sources == nil {
		m.sources = map[string]*upload.Source{}
	}
	m.sources[path] = src
	return src, nil
}

// transfer copies the migration environment into devproto.Dir.
func (j *job) transfer(ctx context.Context, dev Device) (worker.Outcome, bool) {
	path, src := j.env.path, j.env.src
	timeout := j.s.Migrate.TxTimeout
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	j.step("copying the migration environment %s to %s/ (limit %v)", path, devproto.Dir, timeout)
	st, err := upload.Run(tctx, dev, src, devproto.Dir, upload.Options{Interval: 5 * time.Second,
		Progress: func(p upload.Progress) {
			j.log.Info().Str("file", p.File).Int64("done", p.Done).Int64("total", p.Total).
				Str("rate", fmt.Sprintf("%.1f MB/s", p.Rate/1e6)).Msg("transfer progress")
		}})
	if err != nil {
		if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w (took longer than MIG_TX_TIMEOUT=%v)", err, timeout)
		}
		return j.deviceTrouble(ctx, "copying the migration environment", err), false
	}
	j.step("migration environment on the device: %d files, %d sent, %d resumed, %d already there, %.1f MB in %v (%s)",
		st.Files, st.Sent, st.Resumed, st.Skipped, float64(st.Bytes)/1e6, st.Duration.Round(time.Millisecond), st.Method)
	return worker.Outcome{}, true
}
