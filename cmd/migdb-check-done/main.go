// Command migdb-check-done is the worker that waits for migrated devices to
// come online in balena, and reports on a database with --stats.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/cmd/internal/workercmd"
	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
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
	os.Exit(exitcode.Of(cliapp.Run(&cli.App{
		Name:  string(config.CheckDone),
		Usage: "move migrated units to done/ when their device is online in balena",
		Flags: append(config.Flags(config.CheckDone),
			&cli.BoolFlag{Name: "once", Usage: "handle the units due now, then exit (for cron)"},
			&cli.BoolFlag{Name: "stats", Usage: "print a summary by state and failure class, and exit"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "with --stats: write one CSV row per unit to `FILE` (- for stdout; the summary then goes to stderr)"},
			&cli.BoolFlag{Name: "json", Usage: "with --stats: print the summary as JSON (counts, units in flight, rate, rollout, pause)"},
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
					return true, printStats(s, c.String("output"), c.Bool("json"))
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
	)))
}

func printStats(s *config.Settings, out string, asJSON bool) error {
	db, err := spool.OpenExisting(s.Process.DBDir)
	if err != nil {
		return err
	}
	rows, err := stats.Collect(db)
	if err != nil {
		return err
	}
	fleet, err := stats.Summarize(db, rows, time.Now())
	if err != nil {
		return err
	}
	// The summary goes to stdout, or to stderr when stdout carries the CSV.
	summary := io.Writer(os.Stdout)
	switch {
	case out == "-" && asJSON:
		return usage.Errorf("--json and -o - both write to stdout: give -o a file")
	case out == "-":
		// The CSV alone on stdout, so that it can be piped.
		if err := stats.WriteCSV(os.Stdout, rows); err != nil {
			return err
		}
		summary = os.Stderr
	case out != "":
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
		msg := os.Stdout
		if asJSON {
			msg = os.Stderr // stdout is the JSON document
		}
		fmt.Fprintf(msg, "wrote %d rows to %s\n", len(rows), out)
	}
	if asJSON {
		return stats.WriteJSON(os.Stdout, fleet)
	}
	if err := stats.WriteSummary(summary, rows); err != nil {
		return err
	}
	return stats.WriteFleet(summary, fleet)
}
