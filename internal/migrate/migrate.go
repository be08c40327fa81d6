// Package migrate is the migdb-migrate pipeline: for one unit, connect to
// the device, copy the migration environment, pre-register the device in
// balena, send it its config.json, run balena-migrate on it and read the
// verdict. Each step either passes the unit on or ends in an outcome; the
// worker loop moves the file.
//
// What happens when a device refuses SSH, is unreachable or drops the
// transfer: see retry.go. What counts as success on the device: run.go.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/balena"
	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/logging"
	"github.com/fleetmig/balena-migrate/internal/remote"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
	"github.com/fleetmig/balena-migrate/internal/worker"
	"github.com/rs/zerolog"
)

// RemoteDir is where the migration environment goes, relative to the login
// directory on the device.
const RemoteDir = "migrate"

// ConfigName is the config.json's name inside RemoteDir.
const ConfigName = "balena-migrate-config.json"

// Migrator runs the pipeline; one value serves every unit of a worker.
type Migrator struct {
	DB       *spool.DB
	Cloud    balena.Cloud
	Settings *config.Settings
	Log      zerolog.Logger
	Now      func() time.Time
	// Dial connects to a device; nil means remote.Dial.
	Dial func(context.Context, remote.Options) (Device, error)

	mu sync.Mutex
	// sources keeps one Source per migration environment, so each file is
	// hashed once however many devices it is sent to.
	sources map[string]*remote.Source
}

// source returns the migration environment at path.
func (m *Migrator) source(path string) (*remote.Source, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if src, ok := m.sources[path]; ok {
		return src, nil
	}
	src, err := remote.NewSource(path)
	if err != nil {
		return nil, err
	}
	if m.sources == nil {
		m.sources = map[string]*remote.Source{}
	}
	m.sources[path] = src
	return src, nil
}

// envPath is the unit's migration environment: a directory or an archive.
func envPath(s *config.Settings) string {
	if p := s.Path(config.CfgDir); p != "" {
		return p
	}
	return s.Path(config.CfgArchive)
}

// Device is what the pipeline needs from an SSH connection.
type Device interface {
	Upload(ctx context.Context, src *remote.Source, dir string, opt remote.UploadOptions) (remote.UploadStats, error)
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	RunAsRoot(ctx context.Context, dir string, argv []string, stdout, stderr io.Writer) (int, error)
	StartDetachedAsRoot(ctx context.Context, argv []string) error
	Arch(ctx context.Context) (string, error)
	Close() error
}

// job is one unit going through the pipeline.
type job struct {
	*Migrator
	claim *spool.Claim
	u     *unit.Unit // the working copy; saved with claim.Update
	s     *config.Settings
	ulog  *logging.UnitLog
	log   zerolog.Logger // worker log with the unit id
	now   time.Time
	// reboot: balena-migrate asked us to reboot the device.
	reboot bool
}

// DueOf is when a unit may be migrated: its DUE_TS, but not before it is
// MIG_MIN_AGE old.
func (m *Migrator) DueOf(u *unit.Unit) time.Time {
	due, _, _ := u.Due()
	if created, ok, _ := u.CreateTime(); ok {
		if t := created.Add(m.Settings.Duration(config.MinAge)); t.After(due) {
			due = t
		}
	}
	return due
}

// Handle is the worker.Handler of migdb-migrate.
func (m *Migrator) Handle(ctx context.Context, c *spool.Claim) worker.Outcome {
	j := &job{Migrator: m, claim: c, u: c.Unit.Clone(), now: m.Now(), log: m.Log.With().Str("unit", c.ID()).Logger()}
	ulog, err := worker.OpenUnitLog(m.DB, c, j.u, string(config.Migrate))
	if err != nil {
		j.log.Error().Err(err).Msg("cannot open the unit log")
		return worker.HandBack("unit log unavailable")
	}
	defer ulog.Close()
	j.ulog = ulog
	o := j.run(ctx)
	o.Event(&ulog.Log).Msg(o.Msg)
	return o
}

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

// fail ends the unit in fail/.
func (j *job) fail(class unit.FailClass, msg string) worker.Outcome {
	j.u.SetFail(class, msg, j.now)
	return worker.Outcome{To: spool.Fail, Unit: j.u, Msg: fmt.Sprintf("failed (%s): %s", class, msg)}
}

// stopped reports a pipeline cut short by the worker stopping.
func stopped(ctx context.Context) bool { return ctx.Err() != nil }

func (j *job) run(ctx context.Context) worker.Outcome {
	s, err := j.Settings.ForUnit(j.u.Settings(), j.claim.Name())
	if err != nil {
		return j.fail(unit.FailConfigError, err.Error())
	}
	j.s = s
	if msg := missingSetting(s); msg != "" {
		return j.fail(unit.FailConfigError, msg)
	}
	// Record UNIT_OUTPUT_LOG (and anything else) right away.
	if err := j.claim.Update(j.u); err != nil {
		return worker.HandBack("cannot save the unit: " + err.Error())
	}
	t0 := time.Now()
	dev, o, ok := j.connect(ctx)
	if !ok {
		return o
	}
	defer dev.Close()
	took := []string{"connect " + since(t0)}
	stages := []struct {
		name string
		run  func(context.Context, Device) (worker.Outcome, bool)
	}{{"transfer", j.transfer}, {"register", j.register}, {"config", j.sendConfig}, {"run", j.execute}}
	for _, st := range stages {
		t := time.Now()
		if o, ok := st.run(ctx, dev); !ok {
			if stopped(ctx) {
				return worker.HandBack("worker stopping; the unit will be picked up again")
			}
			return o
		}
		took = append(took, st.name+" "+since(t))
	}
	o = j.migrated(ctx, dev)
	o.Msg += " (" + strings.Join(took, ", ") + ")"
	return o
}

// since formats the time since t for step timings.
func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// missingSetting names the first required setting that is not set.
func missingSetting(s *config.Settings) string {
	switch {
	case !s.IsSet(config.SSHHost):
		return "MIG_SSH_HOST is not set: give the device's address with migdb-add-unit --host (or a worker default)"
	case !s.IsSet(config.App):
		return "MIG_APP is not set: give the balena fleet with --app"
	case !s.IsSet(config.BalenaVer):
		return "MIG_BALENA_VER is not set: give the balenaOS version with --balena-ver"
	case !s.IsSet(config.CfgDir) && !s.IsSet(config.CfgArchive):
		return "no migration environment: set MIG_CFG_DIR (--cfg-dir) or MIG_CFG_ARCHIVE (--cfg-tgz)"
	}
	return ""
}

// register writes DEVICE_ID before registering, so a retry after any crash
// re-uses the same UUID and never creates a second device.
func (j *job) register(ctx context.Context, _ Device) (worker.Outcome, bool) {
	uuid := j.u.Get(unit.FieldDeviceID)
	if !balena.ValidUUID(uuid) {
		uuid = balena.NewUUID()
		if err := j.u.Set(unit.FieldDeviceID, uuid); err != nil {
			return j.fail(unit.FailOther, err.Error()), false
		}
		if err := j.claim.Update(j.u); err != nil {
			return worker.HandBack("cannot save DEVICE_ID: " + err.Error()), false
		}
	}
	app := j.s.String(config.App)
	j.step("registering device %s in balena fleet %s", uuid, app)
	dev, err := j.Cloud.Register(ctx, app, uuid)
	if err != nil {
		return j.cloudTrouble(unit.FailRegister, "registering the device", err), false
	}
	if dev.Existing {
		j.step("device %s was already registered (id %d): re-using it", uuid, dev.ID)
	} else {
		j.step("device %s registered (id %d)", uuid, dev.ID)
	}
	return worker.Outcome{}, true
}

// cloudTrouble turns a balena error into an outcome: transient trouble
// puts the unit back for later without counting against it.
func (j *job) cloudTrouble(class unit.FailClass, what string, err error) worker.Outcome {
	if errors.Is(err, balena.ErrTransient) {
		later := j.s.Duration(config.ReconnTime)
		j.u.SetDue(j.now.Add(later))
		return worker.Outcome{To: spool.Units, Unit: j.u, Msg: fmt.Sprintf("%s: balena is unavailable (%v); trying again in %v", what, err, later)}
	}
	return j.fail(class, fmt.Sprintf("%s: %v", what, err))
}
