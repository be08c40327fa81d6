package migrate

import (
	"context"

	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/rs/zerolog"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// SSHOptions builds the SSH options for a unit from its settings: the
// worker's, then the worker's default OpenSSH options, then the unit's own
// (later wins); remote.Dialer.Resolve adds ~/.ssh/config for what is left. warn hears about options that are ignored. Both workers
// reach devices with it.
func SSHOptions(s *config.Settings, log zerolog.Logger, warn func(string)) (remote.Options, error) {
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

// connect opens the SSH connection, or says what becomes of the unit.
func (j *job) connect(ctx context.Context) (Device, worker.Outcome, bool) {
	o, err := SSHOptions(j.s, j.ulog.Log, func(w string) { j.warn("%s", w) })
	if err == nil {
		o, err = j.dialer.Resolve(o) // ~/.ssh/config, for the line below
	}
	if err != nil {
		return nil, j.deviceTrouble(ctx, "SSH options", err), false
	}
	via := ""
	if o.ProxyJump != "" && o.ProxyJump != "none" {
		via = " via " + o.ProxyJump
	}
	j.step("connecting to %s@%s:%d%s", o.User, o.Host, o.Port, via)
	dial := j.Dial
	if dial == nil {
		dial = func(ctx context.Context, o remote.Options) (Device, error) { return j.dialer.Dial(ctx, o) }
	}
	dev, err := dial(ctx, o)
	if err != nil {
		return nil, j.deviceTrouble(ctx, "connecting", err), false
	}
	return dev, worker.Outcome{}, true
}
