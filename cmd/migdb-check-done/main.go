// Command migdb-check-done is the worker that waits for migrated devices to
// come online in balena, and reports on a database with --stats.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/cmd/internal/workercmd"
	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/fleet/checkdone"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/stats"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func main() {
	cliapp.Main(&cli.App{
		Name:  string(config.CheckDone),
		Usage: "move migrated units to done/ when their device is online in balena",
		Flags: append(config.Flags(config.CheckDone),
			&cli.BoolFlag{Name: "once", Usage: "handle the units due now, then exit (for cron)"},
			&cli.BoolFlag{Name: "stats", Usage: "print a summary by state and failure class, and exit"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "with --stats: write one CSV row per unit to `FILE` (- for stdout; the summary then goes to stderr)"},
		),
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			return workercmd.RunWorker(c, workercmd.Spec{
				Bin:   config.CheckDone,
				Input: spool.Process,
				Before: func(_ context.Context, s *config.Settings, _ zerolog.Logger) (bool, error) {
					if !c.Bool("stats") {
						return false, nil
					}
					return true, printStats(s, c.String("output"))
				},
				Handler: func(e workercmd.Env) (worker.Handler, func(*unit.Unit) time.Time) {
					k := &checkdone.Checker{Cloud: e.Cloud, Settings: e.Settings, Log: e.Log, Now: time.Now}
					return k.Handle, nil
				},
			})
		},
	},
		buildinfo.Item{Tag: "migdb-check-done -c fleet.cfg --jobs 4", Text: "Wait for migrated devices to come online, four at a time, until stopped."},
		buildinfo.Item{Tag: "migdb-check-done -c fleet.cfg --stats -o report.csv", Text: "Print units per state, failure class and pre-flight or rehearsal result; write one CSV row per unit."},
		buildinfo.Item{Tag: "migdb-check-done -c fleet.cfg --stats -o - | grep ,fail,", Text: "The CSV on stdout (the summary goes to stderr)."},
	)
}

func printStats(s *config.Settings, out string) error {
	db, err := spool.OpenExisting(s.Process.DBDir)
	if err != nil {
		return err
	}
	rows, err := stats.Collect(db)
	if err != nil {
		return err
	}
	if out == "-" {
		// The CSV alone on stdout, so that it can be piped.
		if err := stats.WriteCSV(os.Stdout, rows); err != nil {
			return err
		}
		return stats.WriteSummary(os.Stderr, rows)
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
