package workercmd

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/metrics"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/status"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

// RolloutGate builds migdb-migrate's gate from its settings (waves, the
// breaker, group limits, windows) and opens it: a rollout is started or
// followed, and a plan other than the database's refused.
func RolloutGate(ctx context.Context, e Env) (worker.Gate, error) {
	s := e.Settings
	g := &rollout.Gate{
		DB: e.DB, MaxPerGroup: s.Rollout.MaxPerGroup, Rescan: s.Process.Rescan, Log: e.Log,
		Real:  !s.Migrate.Pretend && !s.Migrate.Rehearsal,
		Rules: unitRules(s),
	}
	if s.Rollout.Waves != "" {
		p, err := rollout.ParseWaves(s.Rollout.Waves)
		if err != nil {
			return nil, err // checked with the settings already
		}
		g.Plan = p
	}
	if s.Rollout.MaxFail != "" {
		b, err := rollout.ParseMaxFail(s.Rollout.MaxFail)
		if err != nil {
			return nil, err
		}
		g.Breaker = &b
	}
	if !g.Real && (g.Plan.Waves() > 0 || g.Breaker != nil) {
		e.Log.Info().Msg("--waves and --max-fail judge real migrations: a pre-flight or rehearsal worker follows a pause only")
	}
	if err := g.Open(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// unitRules reads a unit's MIG_GROUP, MIG_WINDOW and MIG_TZ, the worker's
// where the unit has none.
func unitRules(s *config.Settings) func(*unit.Unit) rollout.UnitRules {
	def := rollout.UnitRules{Group: s.Unit.Group, Window: s.Unit.Window, Zone: s.Unit.TZ}
	return func(u *unit.Unit) rollout.UnitRules {
		r := def
		if v := u.Get(config.Group); v != "" {
			r.Group = v
		}
		if v := u.Get(config.Window); v != "" {
			r.Window = v
		}
		if v := u.Get(config.TZ); v != "" {
			r.Zone = v
		}
		return r
	}
}

// Resume lifts a paused rollout (migdb-migrate --resume) and says what it
// lifted.
func Resume(ctx context.Context, s *config.Settings, log zerolog.Logger) error {
	db, err := spool.OpenExisting(s.Process.DBDir)
	if err != nil {
		return err
	}
	p, err := rollout.Resume(ctx, db, time.Now())
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if p == nil {
		log.Info().Str("db", db.Root()).Msg("the rollout is not paused: nothing to resume")
		return nil
	}
	log.Info().Str("db", db.Root()).Str("paused_at", unit.ISO(p.At)).Str("reason", p.Reason).Strs("failed", p.Units).
		Msg("rollout resumed: the failures so far are acknowledged and no longer count for --max-fail; workers start units again")
	return nil
}

// serveStatus serves the status page and /metrics on --http until the
// returned function is called.
func serveStatus(s *config.Settings, db *spool.DB, obs *metrics.Metrics, bin config.Binary, log zerolog.Logger) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	census := &status.Census{DB: db}
	addr, err := status.Serve(ctx, s.Process.HTTP, status.Handler(census, obs, string(bin)), log)
	if err != nil {
		cancel()
		return nil, usage.Wrap(err)
	}
	log.Info().Str("addr", addr).Msgf("status page at http://%s/, metrics at http://%s/metrics", addr, addr)
	return cancel, nil
}
