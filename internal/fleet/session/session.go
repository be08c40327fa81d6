// Package session opens a fleet worker's SSH session with the device of
// one unit: the unit's settings become SSH options, the operator's
// ~/.ssh/config completes them, and one remote.Dialer per worker process
// dials (each known_hosts and ssh_config file parsed once, logins to a
// jump host capped). migdb-migrate and migdb-check-done reach devices only
// through it, so both log in alike.
package session

import (
	"context"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

// Opener opens the sessions of one worker process. D is what the worker
// uses of a connection; *remote.Client must be one (each worker checks
// that at compile time). The zero value is ready; share one per process.
type Opener[D any] struct {
	// Dial replaces the dial, for tests that put faults or stand-ins in;
	// nil dials with the Dialer shared by every unit.
	Dial   func(context.Context, remote.Options) (D, error)
	dialer remote.Dialer
}

// Options builds the SSH options for a unit with settings s, completed from
// ~/.ssh/config as Open will use them. Settings that cannot work are usage
// errors. warn hears about options that are ignored.
func (op *Opener[D]) Options(s *config.Settings, log zerolog.Logger, warn func(string)) (remote.Options, error) {
	o, err := fromSettings(s, log, warn)
	if err != nil {
		return o, err
	}
	return op.dialer.Resolve(o)
}

// Open connects to the device with options from Options.
func (op *Opener[D]) Open(ctx context.Context, o remote.Options) (D, error) {
	if op.Dial != nil {
		return op.Dial(ctx, o)
	}
	c, err := op.dialer.Dial(ctx, o)
	if err != nil {
		var none D
		return none, err
	}
	return any(c).(D), nil
}

// fromSettings builds the options from the settings: the worker's, then the
// worker's default OpenSSH options (--ssh-opts), then the unit's own
// MIG_SSH_OPTS; later wins.
func fromSettings(s *config.Settings, log zerolog.Logger, warn func(string)) (remote.Options, error) {
	u, m := s.Unit, s.SSH
	o := remote.Options{
		Host:           u.SSHHost,
		User:           u.SSHUser,
		Password:       u.SSHPasswd,
		ConnectTimeout: m.ConnTimeout,
		Log:            log,
	}
	// Settings left at their defaults give way to the operator's
	// ~/.ssh/config; remote fills what is still unset with the same defaults.
	if s.Source(config.SSHPort) != "default" {
		o.Port = u.SSHPort
	}
	if s.Source(config.KnownHosts) != "default" {
		o.KnownHosts = m.KnownHosts
	}
	if s.Source(config.HostKeyPolicy) != "default" {
		policy, err := remote.ParsePolicy(m.HostKeyPolicy)
		if err != nil {
			return remote.Options{}, usage.Wrap(err)
		}
		o.HostKeyPolicy = policy
	}
	if u.SSHKey != "" {
		o.KeyFiles = []string{u.SSHKey}
	}
	for _, set := range []struct{ name, opts string }{
		{"--ssh-opts (MIG_DEF_SSH_OPTS)", m.DefSSHOpts},
		{"the unit's MIG_SSH_OPTS", u.SSHOpts},
	} {
		var warns []string
		var err error
		o, warns, err = o.WithSSHOpts(set.opts)
		if err != nil {
			return o, usage.Errorf("%s: %w", set.name, err)
		}
		for _, w := range warns {
			warn(set.name + ": " + w)
		}
	}
	return o, nil
}
