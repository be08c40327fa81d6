// Command migdb-migrate is the worker that migrates devices: it claims due
// units, copies the migration environment over SSH, pre-registers the
// device in balena and runs balena-migrate on it.
package main

import (
	"context"
	"os"
	"time"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/cmd/internal/workercmd"
	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/migrate"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(exitcode.Of(cliapp.Run(&cli.App{
		Name:  string(config.Migrate),
		Usage: "migrate the devices of the units in db/units to balenaOS",
		Flags: append(config.Flags(config.Migrate),
			&cli.BoolFlag{Name: "once", Usage: "handle the units due now, then exit (for cron)"},
			&cli.BoolFlag{Name: "stop", Usage: "ask every worker on this db to stop, wait until they have, and exit"},
			&cli.BoolFlag{Name: "resume", Usage: "lift a paused rollout (db/PAUSED): the failures so far no longer count for --max-fail; then exit"},
		),
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			return workercmd.RunWorker(c, workercmd.Spec{
				Bin:   config.Migrate,
				Input: spool.Units,
				Before: func(ctx context.Context, s *config.Settings, log zerolog.Logger) (bool, error) {
					if c.Bool("resume") {
						return true, workercmd.Resume(ctx, s, log)
					}
					if !c.Bool("stop") {
						return false, nil
					}
					db, err := spool.OpenExisting(s.Process.DBDir)
					if err != nil {
						return true, err
					}
					return true, migrate.Stop(ctx, db, log)
				},
				Check:      migrate.CheckEnvironment,
				CheckFleet: true,
				ImageTypes: migrate.ImageTypes,
				Gate:       workercmd.RolloutGate,
				Handler: func(e workercmd.Env) (worker.Handler, func(*unit.Unit) time.Time) {
					m := &migrate.Migrator{Cloud: e.Cloud, Settings: e.Settings, Log: e.Log, Now: time.Now}
					return m.Handle, m.DueOf
				},
			})
		},
	},
		buildinfo.Item{Tag: "migdb-migrate -c fleet.cfg --pretend --once", Text: "Pre-flight every unit due now: probe, upload, balena-migrate --pretend; nothing registered, nothing rebooted."},
		buildinfo.Item{Tag: "migdb-migrate -c fleet.cfg --rehearsal", Text: "Rehearse with an environment whose balena-migrate.conf says NO_FLASH=TRUE."},
		buildinfo.Item{Tag: "migdb-migrate -c fleet.cfg --jobs 8", Text: "Migrate, eight devices at a time, until stopped."},
		buildinfo.Item{Tag: "migdb-migrate -c fleet.cfg --stop", Text: "Stop every worker of the database once it has finished the unit in hand."},
		buildinfo.Item{Tag: "migdb-migrate -c fleet.cfg --waves 1,10,25%,100% --max-fail 5%,stage2=0 --http 127.0.0.1:9110", Text: "Roll out in waves (a canary, ten, a quarter, the rest), each once the ones before are online or failed; pause the database when more than 5% of the ended units, or any as stage2, failed; serve the status page and /metrics."},
		buildinfo.Item{Tag: "migdb-migrate -c fleet.cfg --resume", Text: "Lift a pause (db/PAUSED) once the failed units are understood."},
	)))
}
