// Package migrate is the migdb-migrate pipeline. For one unit it runs the
// steps in the order of their files — connect, transfer, register (the
// device and its config.json), execute (balena-migrate on the device) —
// and reads the device's verdict. Every step ends in an outcome; the worker
// loop alone moves the unit file.
//
// What an error means for the unit (fail now, try again later, hand back)
// is decided in one table: failure.go.
package migrate

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/logging"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote/upload"
	"github.com/fleetmig/balena-migrate/internal/fleet/session"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/rs/zerolog"
)

// Migrator runs the pipeline; one value serves every unit of a worker.
type Migrator struct {
	Cloud    balena.Cloud
	Settings *config.Settings // the worker's; each unit's own values go on top
	Log      zerolog.Logger
	Now      func() time.Time
	// Devices opens the SSH sessions; the zero value dials for real.
	Devices session.Opener[Device]

	mu sync.Mutex
	// sources keeps one Source per migration environment, so each file is
	// hashed once however many devices it is sent to.
	sources map[string]*upload.Source
}

// Device is what the pipeline needs from an SSH connection.
type Device interface {
	upload.Session // Output, WriteFile, Subsystem, Classify
	RunAsRoot(ctx context.Context, dir string, argv []string, stdout, stderr io.Writer) (int, error)
	StartDetachedAsRoot(ctx context.Context, argv []string) error
	Close() error
}

var _ Device = (*remote.Client)(nil) // what session.Opener dials

// never is the due time of a unit this worker will not handle.
func never() time.Time { return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }

// DueOf is when a unit may be migrated: its DUE_TS, but not before it is
// MIG_MIN_AGE old. A pre-flight (--pretend) or rehearsal worker handles
// each unit once: a unit with its result waits for a real run.
func (m *Migrator) DueOf(u *unit.Unit) time.Time {
	switch mode := m.Settings.Migrate; {
	case mode.Pretend && u.Get(unit.FieldPreflight) != "", mode.Rehearsal && u.Get(unit.FieldRehearsal) != "":
		return never()
	}
	due, _, _ := u.Due()
	if created, ok, _ := u.CreateTime(); ok {
		if t := created.Add(m.Settings.Migrate.MinAge); t.After(due) {
			due = t
		}
	}
	return due
}

// job is one unit going through the pipeline.
type job struct {
	*Migrator
	u    *unit.Unit // the working copy
	save func(*unit.Unit) error
	name string // the unit file's name
	s    *config.Settings
	ulog *logging.UnitLog
	log  zerolog.Logger // worker log with the unit id
	now  time.Time
	// Found on the way: what the probe saw, the environment chosen for
	// the device, and whether balena-migrate asked for a reboot.
	probe     probe
	env       environment
	reboot    bool
	rebootArg string // the argument reboot must get, if any
	// device is what the register step got from balena, for the config.
	device balena.Device
	// mark records the step the pipeline begins (worker.Job.Step).
	mark func(step string)
	// osKeys go into config.json's os.sshKeys (MIG_OS_SSH_KEY).
	osKeys []string
}

// step is one stage of the pipeline after connecting; ok false ends the
// pipeline with the outcome.
type step struct {
	name string
	run  func(context.Context, Device) (worker.Outcome, bool)
}

// Handle is the worker.Handler of migdb-migrate.
func (m *Migrator) Handle(ctx context.Context, wj *worker.Job) worker.Outcome {
	j := &job{Migrator: m, u: wj.Unit, save: wj.Save, mark: wj.Step, name: wj.Name, ulog: wj.Log, now: m.Now(),
		log: m.Log.With().Str("unit", wj.Unit.ID()).Logger()}
	return j.run(ctx)
}

// steps lists the pipeline after connecting, for the worker's mode. Every
// mode checks the device (probe, pre-flight) before anything that cannot
// be undone; only a real run registers the device in balena.
func (j *job) steps() []step {
	check := []step{{"probe", j.probeDevice}, {"transfer", j.transfer}}
	if j.s.Unit.ImageURL != "" {
		check = append(check, step{"fetch", j.fetchImage})
	}
	check = append(check, step{"preflight", j.preflight})
	switch {
	case j.s.Migrate.Pretend:
		return check
	case j.s.Migrate.Rehearsal:
		return append(check, step{"run", j.execute})
	}
	return append(check, step{"register", j.register}, step{"config", j.sendConfig}, step{"run", j.execute})
}

func (j *job) run(ctx context.Context) worker.Outcome {
	s, err := j.Settings.ForUnit(j.u.Settings(), j.name)
	if err != nil {
		return j.fail(devproto.ClassConfigError, err.Error())
	}
	j.s = s
	if msg := s.Unit.Missing(); msg != "" {
		return j.fail(devproto.ClassConfigError, msg)
	}
	if j.osKeys, err = readOSKeys(s.Unit.OSSSHKey); err != nil {
		return j.fail(devproto.ClassConfigError, err.Error())
	}
	if o, done := j.alreadyOnline(ctx); done {
		return o
	}
	t0 := time.Now()
	j.mark("connect")
	dev, o, ok := j.connect(ctx)
	if !ok {
		return o
	}
	defer dev.Close()
	took := []string{"connect " + since(t0)}
	// A device an earlier attempt registered has a dashboard entry to
	// show every phase on; a new one only from its registration on.
	registered := balena.ValidUUID(j.u.Get(unit.FieldDeviceID))
	for _, st := range j.steps() {
		t := time.Now()
		j.mark(st.name)
		if registered || st.name == "run" {
			j.progress(ctx, st.name)
		}
		if o, ok := st.run(ctx, dev); !ok {
			if stopped(ctx) {
				return worker.HandBack("worker stopping; the unit will be picked up again")
			}
			return o
		}
		took = append(took, st.name+" "+since(t))
	}
	o = j.finish(ctx, dev)
	o.Msg += " (" + strings.Join(took, ", ") + ")"
	return o
}

// since formats the time since t for step timings.
func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// stopped reports a pipeline cut short by the worker stopping.
func stopped(ctx context.Context) bool { return ctx.Err() != nil }

// step logs what the pipeline is doing in both logs.
func (j *job) step(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	j.ulog.Log.Info().Msg(msg)
	j.log.Info().Msg(msg)
}

func (j *job) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	j.ulog.Log.Warn().Msg(msg)
	j.log.Warn().Msg(msg)
}
