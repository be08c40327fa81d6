// Package cliapp holds what the migdb programs share on the command line:
// running the app (errors printed as one line), the man page, process
// logging from settings, and signal handling. Libraries return errors;
// each program's main turns Run's error into its exit code with
// internal/exitcode, the map balena-migrate uses too.
package cliapp

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/logging"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// exitStatus says what each exit code means, for the man pages.
func exitStatus() []buildinfo.Item {
	return []buildinfo.Item{
		{Tag: "0", Text: "Success. A worker also exits 0 when it was stopped (migdb-migrate --stop, SIGINT, SIGTERM)."},
		{Tag: "1", Text: "The job failed: a unit was refused, a migration or a check failed; with --once, a unit the worker handled went to fail/."},
		{Tag: "2", Text: "Bad usage or settings, found before any unit is touched: a flag or setting that does not parse (the message names it and where the value came from), balena credentials that do not work, a missing migration environment, a --base without a database."},
	}
}

// Precedence says in one line which value of a setting wins.
const Precedence = "Settings: flags beat MIG_* environment variables, which beat the settings file (--cfg / MIG_CFG); a unit's own values beat all of them for that unit."

// Run runs app and returns its error for main to exit with
// (exitcode.Of); errors are printed as one line naming the program, never
// as a stack trace. examples end the man page, after its exit status and
// environment.
func Run(app *cli.App, examples ...buildinfo.Item) error {
	app.ExitErrHandler = func(*cli.Context, error) {}
	if app.Description == "" {
		app.Description = Precedence
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usage.Wrap(err) }
	// A lone "help" is the help, as in most tools, never a unit called help.
	action := app.Action
	app.Action = func(c *cli.Context) error {
		if c.NArg() == 1 && c.Args().First() == "help" {
			return cli.ShowAppHelp(c)
		}
		return action(c)
	}
	buildinfo.Setup(app, manual(config.Binary(app.Name), examples)...)
	err := app.Run(flagsFirst(app.Flags, os.Args))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", app.Name, err)
	}
	return err
}

// Logger opens the process log described by the settings. The program
// calls end with its result as it returns: when the log goes to a file, an
// error that ends the program is written there too (under systemd or cron
// stderr may be read by nobody), then the file is closed.
func Logger(s *config.Settings, bin config.Binary) (log zerolog.Logger, end func(error), err error) {
	l, c, err := logging.Open(logging.Options{
		Binary: string(bin),
		To:     s.Process.LogTo,
		Format: s.Process.LogFormat,
		Color:  s.Process.Color,
		Level:  s.Process.LogLevel,
	})
	if err != nil {
		return l, nil, usage.Wrap(err)
	}
	for _, w := range s.Warnings {
		l.Warn().Msg(w)
	}
	return l, func(err error) { finish(l, c, s.Process.LogTo != "", err) }, nil
}

// finish logs the error that ends the program to a log file, then closes it.
func finish(l zerolog.Logger, c io.Closer, toFile bool, err error) {
	if err != nil && toFile {
		l.Error().Int("exit_code", exitcode.Of(err)).Msg("stopped: " + err.Error())
	}
	c.Close()
}

// Signals returns a context cancelled by the first SIGINT or SIGTERM (a
// graceful stop) and a second one cancelled by a second signal (abandon the
// work in hand, handing units back).
func Signals(parent context.Context) (graceful, hard context.Context, stop func()) {
	graceful, cancelGraceful := context.WithCancel(parent)
	hard, cancelHard := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-ch:
				n++
				cancelGraceful()
				if n > 1 {
					cancelHard()
				}
			case <-done:
				return
			}
		}
	}()
	return graceful, hard, func() {
		signal.Stop(ch)
		close(done)
		cancelGraceful()
		cancelHard()
	}
}
