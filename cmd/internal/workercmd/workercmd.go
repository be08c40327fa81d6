// Package workercmd is what migdb-migrate and migdb-check-done share as
// programs: settings, log and signals, the worker registration, the balena
// credentials check, and the loop. Each program says only what differs.
package workercmd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/cloud"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/metrics"
	"github.com/fleetmig/balena-migrate/internal/fleet/migrate"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// Env is what a worker program has once it is set up.
type Env struct {
	Settings *config.Settings
	Log      zerolog.Logger
	DB       *spool.DB
	Cloud    balena.Cloud
}

// Spec says what a worker program does differently.
type Spec struct {
	Bin   config.Binary
	Input spool.Dir
	// CheckFleet checks the worker's --app and --balena-ver in balena at
	// start-up (migdb-migrate).
	CheckFleet bool
	// ImageTypes lists the device types the migration environment
	// registers devices as, which CheckFleet checks against balena's
	// device types and the fleet's.
	ImageTypes func(ctx context.Context, s *config.Settings) ([]migrate.ImageType, error)
	// Before runs once settings and the log are up and before the worker
	// registers; done ends the program there (--stop, --stats).
	Before func(ctx context.Context, s *config.Settings, log zerolog.Logger) (done bool, err error)
	// Check runs after the registration, before the balena credentials are
	// tried: a refusal here is cheaper.
	Check func(ctx context.Context, s *config.Settings) error
	// Handler builds the pipeline; dueOf may be nil (DUE_TS alone).
	Handler func(e Env) (h worker.Handler, dueOf func(*unit.Unit) time.Time)
	// Gate, when set, builds the gate that holds units back (RolloutGate).
	Gate func(ctx context.Context, e Env) (worker.Gate, error)
}

// RunWorker runs a worker program: settings, log, signals, registration,
// checks, the balena client, then the loop until stopped.
func RunWorker(c *cli.Context, spec Spec) (err error) {
	if c.NArg() > 0 {
		return usage.Errorf("unexpected argument %q (see --help)", c.Args().First())
	}
	s, err := config.FromCLI(c, spec.Bin)
	if err != nil {
		return err
	}
	log, end, err := cliapp.Logger(s, spec.Bin)
	if err != nil {
		return err
	}
	defer func() { end(err) }()
	graceful, hard, stop := cliapp.Signals(c.Context)
	defer stop()
	if spec.Before != nil {
		if done, err := spec.Before(graceful, s, log); done || err != nil {
			return err
		}
	}
	// Register before anything slow, so `migdb-migrate --stop` waits for
	// a worker that is still starting.
	db, err := spool.OpenExisting(s.Process.DBDir)
	if err != nil {
		return err
	}
	reg, err := db.Register(string(spec.Bin))
	if err != nil {
		return fmt.Errorf("register worker in %s: %w", db.Root(), err)
	}
	defer reg.Close()
	if spec.Check != nil {
		if err := spec.Check(graceful, s); err != nil {
			return err
		}
	}
	var obs *metrics.Metrics
	if s.Process.HTTP != "" {
		obs = metrics.New(string(spec.Bin))
	}
	cl, err := cloudCounted(graceful, s, log, obs)
	if err != nil {
		return err
	}
	if spec.CheckFleet {
		if err := CheckFleet(graceful, s, cl, spec.ImageTypes, log); err != nil {
			return err
		}
	}
	env := Env{Settings: s, Log: log, DB: db, Cloud: cl}
	handle, dueOf := spec.Handler(env)
	loop := &worker.Loop{
		DB: db, Input: spec.Input, Name: string(spec.Bin), DueOf: dueOf,
		Jobs: s.Process.Jobs, Rescan: s.Process.Rescan, Once: c.Bool("once"), Log: log, Handle: handle, Reg: reg,
	}
	if spec.Gate != nil {
		if loop.Gate, err = spec.Gate(graceful, env); err != nil {
			return err
		}
	}
	if obs != nil {
		loop.Observer = obs
		stopServer, err := serveStatus(s, db, obs, spec.Bin, log)
		if err != nil {
			return err
		}
		defer stopServer()
	}
	log.Info().Str("db", db.Root()).Int("jobs", loop.Jobs).Msg("worker started")
	if err := loop.Run(graceful, hard); err != nil {
		return err
	}
	// A --once run (cron) reports failed units by its exit code.
	if handled, failed := loop.Ended(); loop.Once && failed > 0 {
		return fmt.Errorf("%d of the %d units handled went to %s", failed, handled, db.Path(spool.Fail))
	}
	return nil
}

// Cloud builds the balena client the settings describe and checks its
// credentials with one cheap call. Any failure is a usage error (exit 2):
// a worker must not touch a unit with credentials that do not work.
func Cloud(ctx context.Context, s *config.Settings, log zerolog.Logger) (balena.Cloud, error) {
	return cloudCounted(ctx, s, log, nil)
}

// cloudCounted is Cloud with the API requests counted in obs (when set).
func cloudCounted(ctx context.Context, s *config.Settings, log zerolog.Logger, obs *metrics.Metrics) (balena.Cloud, error) {
	b := s.Balena
	home, _ := os.UserHomeDir()
	rc := balena.CLIConfig{Getenv: os.Getenv, Home: home}
	from := s.Source(config.BalenaAPI)
	if b.API == "" {
		var err error
		if b.API, from, err = rc.APIURL(); err != nil {
			return nil, usage.Errorf("finding the balena API as the balena CLI would: %v (or give --balena-api)", err)
		}
	}
	log.Info().Str("api", b.API).Str("from", from).Msg("balena API")
	opts := balena.Options{APIURL: b.API, Token: b.Token, Log: log}
	if obs != nil {
		opts.HTTPClient = &http.Client{Timeout: opts.WithDefaults().Timeout, Transport: obs.Transport(nil)}
	}
	c, err := cloud.New(b.Client, rc.Credentials(opts))
	if err != nil {
		return nil, usage.Errorf("balena (%s): %v", b.Client, err)
	}
	user, err := c.Whoami(ctx)
	switch {
	case errors.Is(err, balena.ErrUnauthorized):
		return nil, usage.Errorf("balena at %s rejected the token: %v", b.API, err)
	case err != nil:
		return nil, usage.Errorf("cannot check the balena credentials at %s: %v (a self-signed or private CA: point SSL_CERT_FILE at its certificate)", b.API, err)
	}
	log.Info().Str("user", user.Username).Int64("user_id", user.ID).Msg("balena credentials accepted")
	return c, nil
}

// CheckFleet checks the worker's fleet, balenaOS version and images
// (--app, --balena-ver, the environment's device types) before any device
// is touched: a fleet that does not exist or that the token cannot
// register into, a malformed reference, a version balena does not know,
// or an image for a device type balena does not know or the fleet cannot
// run stops the worker (exit 2) with the reason. A rehearsal registers
// nothing and skips it; without --app each unit's own fleet is looked up
// when it is registered, and the images' types are checked alone.
func CheckFleet(ctx context.Context, s *config.Settings, c balena.Cloud,
	imageTypes func(context.Context, *config.Settings) ([]migrate.ImageType, error), log zerolog.Logger) error {
	if s.Migrate.Rehearsal {
		return nil
	}
	app, ver := s.Unit.App, s.Unit.BalenaVer
	var f balena.Fleet
	if app == "" {
		log.Info().Msg("no --app / MIG_APP for the worker: each unit's fleet is checked when it is registered")
	} else {
		var err error
		if f, err = c.CheckFleet(ctx, app, ver); err != nil {
			where := "--app / MIG_APP " + s.Source(config.App)
			if errors.Is(err, balena.ErrInvalid) && strings.Contains(err.Error(), balena.SettingVersion) {
				where = "--balena-ver / MIG_BALENA_VER " + s.Source(config.BalenaVer)
			}
			return usage.Errorf("the fleet cannot take devices (%s): %v", strings.TrimSpace(where), err)
		}
		ev := log.Info().Str("fleet", f.Slug).Int64("fleet_id", f.ID).Str("device_type", f.DeviceType)
		switch {
		case ver == "":
			ev.Msg("fleet checked; no --balena-ver for the worker: each unit's version is checked when it is registered")
		case f.OSVersionChecked:
			ev.Str("balena_ver", ver).Msg("fleet and balenaOS version checked")
		default:
			ev.Str("balena_ver", ver).Msg("fleet checked; balena lists no balenaOS releases for this type (openBalena keeps none), so the version was checked only by generating a config.json with it")
		}
	}
	if imageTypes == nil {
		return nil
	}
	return checkImageTypes(ctx, s, c, f, imageTypes, log)
}

// checkImageTypes refuses an environment whose image is for a device type
// balena does not know (it would refuse each registration with 404
// "Unknown device type", after upload and pre-flight) or whose devices
// could not run the fleet's releases.
func checkImageTypes(ctx context.Context, s *config.Settings, c balena.Cloud, f balena.Fleet,
	imageTypes func(context.Context, *config.Settings) ([]migrate.ImageType, error), log zerolog.Logger) error {
	types, err := imageTypes(ctx, s)
	if err != nil || len(types) == 0 {
		return err
	}
	known, err := c.DeviceTypes(ctx)
	if err != nil {
		return usage.Errorf("cannot list balena's device types to check the migration images against: %v", err)
	}
	for _, it := range types {
		op := fmt.Sprintf("check device type %s of %s (%s)", it.Slug, it.Env, it.From)
		if err := balena.CheckDeviceType(op, known, f.DeviceType, it.Slug); err != nil {
			return usage.Errorf("the fleet cannot take the devices this environment migrates: %v", err)
		}
		log.Info().Str("device_type", it.Slug).Str("env", it.Env).Msg("device type checked: balena knows it and the fleet runs it")
	}
	return nil
}
