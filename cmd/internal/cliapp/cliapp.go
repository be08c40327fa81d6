// Package cliapp holds what the four command-line programs share: exit codes
// (SPEC §12), process logging from settings, and signal handling.
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
	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/logging"
	"github.com/fleetmig/balena-migrate/internal/spool"
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

// Main runs app and exits with the right code; errors are printed as one
// line naming the program, never as a stack trace.
func Main(app *cli.App) {
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usage.Wrap(err) }
	buildinfo.Setup(app)
	err := app.Run(os.Args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", app.Name, err)
	}
	os.Exit(Code(err))
}

// Logger opens the process log described by the settings.
func Logger(s *config.Settings, bin config.Binary) (zerolog.Logger, io.Closer, error) {
	l, c, err := logging.Open(logging.Options{
		Binary: string(bin),
		To:     s.Path(config.LogTo),
		Format: s.Lower(config.LogFormat),
		Color:  s.Lower(config.Color),
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

// Worker is what both worker programs set up before their loop: settings,
// the process log and signal handling.
type Worker struct {
	Settings *config.Settings
	Log      zerolog.Logger
	// Graceful ends at the first SIGINT/SIGTERM, Hard at the second.
	Graceful, Hard context.Context
	closers        []func()
}

// StartWorker resolves bin's settings, opens its log and installs the
// signal handlers. It refuses positional arguments.
func StartWorker(c *cli.Context, bin config.Binary) (*Worker, error) {
	if c.NArg() > 0 {
		return nil, usage.Errorf("unexpected argument %q (see --help)", c.Args().First())
	}
	s, err := config.FromCLI(c, bin)
	if err != nil {
		return nil, err
	}
	log, closer, err := Logger(s, bin)
	if err != nil {
		return nil, err
	}
	w := &Worker{Settings: s, Log: log}
	var stop func()
	w.Graceful, w.Hard, stop = Signals(c.Context)
	w.closers = []func(){stop, func() { closer.Close() }}
	return w, nil
}

// Register opens the database and records this worker in it before
// anything slow happens, so `migdb-migrate --stop` waits for it too.
func (w *Worker) Register(bin config.Binary) (*spool.DB, *spool.Registration, error) {
	db, err := spool.Open(w.Settings.Path(config.DBDir))
	if err != nil {
		return nil, nil, err
	}
	reg, err := db.Register(string(bin))
	if err != nil {
		return nil, nil, fmt.Errorf("register worker in %s: %w", db.Root(), err)
	}
	w.closers = append([]func(){func() { reg.Close() }}, w.closers...)
	return db, reg, nil
}

// Close stops signal handling and closes the log.
func (w *Worker) Close() {
	for _, f := range w.closers {
		f()
	}
}
