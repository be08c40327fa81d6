// Command migdb-migrate is the worker that migrates devices: it claims due
// units, copies the migration environment over SSH, pre-registers the
// device in balena and runs balena-migrate on it.
package main

import (
	"time"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/migrate"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/worker"
	"github.com/urfave/cli/v2"
)

func main() {
	cliapp.Main(&cli.App{
		Name:  string(config.Migrate),
		Usage: "migrate the devices of the units in db/units to balenaOS",
		Flags: append(config.Flags(config.Migrate),
			&cli.BoolFlag{Name: "once", Usage: "handle the units due now, then exit (for cron)"},
			&cli.BoolFlag{Name: "stop", Usage: "ask every worker on this db to stop, wait until they have, and exit"},
		),
		HideHelpCommand: true,
		Action:          run,
	})
}

func run(c *cli.Context) error {
	w, err := cliapp.StartWorker(c, config.Migrate)
	if err != nil {
		return err
	}
	defer w.Close()
	s, log, graceful := w.Settings, w.Log, w.Graceful
	if c.Bool("stop") {
		db, err := spool.Open(s.Path(config.DBDir))
		if err != nil {
			return err
		}
		return migrate.Stop(graceful, db, log)
	}
	db, reg, err := w.Register(config.Migrate)
	if err != nil {
		return err
	}
	if err := migrate.CheckEnvironment(graceful, s); err != nil {
		return err
	}
	cloud, err := cliapp.Cloud(graceful, s, log)
	if err != nil {
		return err
	}
	m := &migrate.Migrator{DB: db, Cloud: cloud, Settings: s, Log: log, Now: time.Now}
	loop := &worker.Loop{
		DB: db, Input: spool.Units, Name: string(config.Migrate), DueOf: m.DueOf,
		Jobs: s.Int(config.Jobs), Once: c.Bool("once"), Log: log, Handle: m.Handle, Reg: reg,
	}
	log.Info().Str("db", db.Root()).Int("jobs", loop.Jobs).Msg("migrating units")
	return loop.Run(graceful, w.Hard)
}
