// Command migdb-check-done is the worker that waits for migrated devices to
// come online in balena, and reports on a database with --stats.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/internal/checkdone"
	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/stats"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/fleetmig/balena-migrate/internal/worker"
	"github.com/urfave/cli/v2"
)

func main() {
	cliapp.Main(&cli.App{
		Name:  string(config.CheckDone),
		Usage: "move migrated units to done/ when their device is online in balena",
		Flags: append(config.Flags(config.CheckDone),
			&cli.BoolFlag{Name: "once", Usage: "handle the units due now, then exit (for cron)"},
			&cli.BoolFlag{Name: "stats", Usage: "print a summary by state and failure class, and exit"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "with --stats: write one CSV row per unit to this file"},
		),
		HideHelpCommand: true,
		Action:          run,
	})
}

func run(c *cli.Context) error {
	w, err := cliapp.StartWorker(c, config.CheckDone)
	if err != nil {
		return err
	}
	defer w.Close()
	s, log, graceful := w.Settings, w.Log, w.Graceful
	if c.Bool("stats") {
		return printStats(s, c.String("output"))
	}
	db, reg, err := w.Register(config.CheckDone)
	if err != nil {
		return err
	}
	cloud, err := cliapp.Cloud(graceful, s, log)
	if err != nil {
		return err
	}
	k := &checkdone.Checker{DB: db, Cloud: cloud, Settings: s, Log: log, Now: time.Now}
	loop := &worker.Loop{
		DB: db, Input: spool.Process, Name: string(config.CheckDone),
		Jobs: s.Int(config.Jobs), Once: c.Bool("once"), Log: log, Handle: k.Handle, Reg: reg,
	}
	log.Info().Str("db", db.Root()).Int("jobs", loop.Jobs).Msg("checking migrated units")
	return loop.Run(graceful, w.Hard)
}

func printStats(s *config.Settings, out string) error {
	db, err := spool.Open(s.Path(config.DBDir))
	if err != nil {
		return err
	}
	rows, err := stats.Collect(db)
	if err != nil {
		return err
	}
	if out != "" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return usage.Errorf("--output %s: %v", out, err)
		}
		if err := stats.WriteCSV(f, rows); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Printf("wrote %d rows to %s\n", len(rows), out)
	}
	return stats.WriteSummary(os.Stdout, rows)
}
