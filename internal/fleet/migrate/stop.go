package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/rs/zerolog"
)

// Stop asks every worker of the database to stop, waits until all have
// exited, and removes the stop file.
func Stop(ctx context.Context, db *spool.DB, log zerolog.Logger) error {
	if err := db.RequestStop(); err != nil {
		return fmt.Errorf("creating the stop file: %w", err)
	}
	defer db.ClearStop()
	log.Info().Str("file", db.Path(spool.Tmp, spool.StopFile)).Msg("stop file created; waiting for the workers to finish their units")
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	quiet := 0
	for {
		n, err := db.LiveWorkers()
		if err != nil {
			return err
		}
		if n == 0 {
			// A worker registers first thing when it starts; one more look
			// a moment later catches a worker that was just starting.
			if quiet++; quiet >= 3 {
				log.Info().Msg("every worker has stopped")
				return nil
			}
		} else {
			quiet = 0
		}
		if time.Since(last) > 10*time.Second {
			log.Info().Int("workers", n).Msg("still waiting for workers")
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while %d workers were still running: %w", n, ctx.Err())
		case <-tick.C:
		}
	}
}
