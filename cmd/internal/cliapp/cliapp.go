// Package cliapp holds what the migdb programs share on the command line:
// exit codes (README, Exit codes) — decided here and nowhere else — process logging
// from settings, and signal handling. Libraries return errors; this
// package turns them into exit codes.
package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fleetmig/balena-migrate/internal/buildinfo"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/logging"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // the job failed
	ExitUsage  = 2 // bad usage or bad settings
)

// Code maps an error to the process exit code.
func Code(err error) int {
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return ExitOK
	case usage.Is(err):
		return ExitUsage
	case errors.As(err, &ec):
		return ec.ExitCode()
	}
	return ExitFailed
}

// Precedence says in one line which value of a setting wins.
const Precedence = "Settings: flags beat MIG_* environment variables, which beat the settings file (--cfg / MIG_CFG); a unit's own values beat all of them for that unit."

// Main runs app and exits with the right code; errors are printed as one
// line naming the program, never as a stack trace.
func Main(app *cli.App) {
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
	buildinfo.Setup(app)
	err := app.Run(flagsFirst(app.Flags, os.Args))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", app.Name, err)
	}
	os.Exit(Code(err))
}

// Logger opens the process log described by the settings.
func Logger(s *config.Settings, bin config.Binary) (zerolog.Logger, io.Closer, error) {
	l, c, err := logging.Open(logging.Options{
		Binary: string(bin),
		To:     s.Process.LogTo,
		Format: s.Process.LogFormat,
		Color:  s.Process.Color,
		Level:  s.Process.LogLevel,
	})
	if err != nil {
		return l, c, usage.Wrap(err)
	}
	for _, w := range s.Warnings {
		l.Warn().Msg(w)
	}
	return l, c, nil
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
