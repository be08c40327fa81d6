package migrate

import (
	"context"

	"os/user"

	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/rs/zerolog"

	"github.com/fleetmig/balena-migrate/internal/remote"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/fleetmig/balena-migrate/internal/worker"
)

// SSHOptions builds the SSH options for a unit from its settings: the
// worker's, then the worker's default OpenSSH options, then the unit's own
// (later wins). warn hears about options that are ignored. Both workers
// reach devices with it.
func SSHOptions(s *config.Settings, log zerolog.Logger, warn func(string)) (remote.Options, error) {
	u, m := s.Unit, s.SSH
	policy, err := remote.ParsePolicy(m.HostKeyPolicy)
	if err != nil {
		return remote.Options{}, usage.Wrap(err)
	}
	o := remote.Options{
		Host:           u.SSHHost,
		Port:           u.SSHPort,
		User:           u.SSHUser,
		Password:       u.SSHPasswd,
		KnownHosts:     m.KnownHosts,
		HostKeyPolicy:  policy,
		ConnectTimeout: m.ConnTimeout,
		Log:            log,
	}
	if o.User == "" {
		// As ssh(1) does: the local user name.
		if me, err := user.Current(); err == nil {
			o.User = me.Username
		}
	}
	if u.SSHKey != "" {
		o.KeyFiles = []string{u.SSHKey}
	}
	for _, set := range []struct{ name, opts string }{
		{"--ssh-opts (MIG_DEF_SSH_OPTS)", m.DefSSHOpts},
		{"the unit's MIG_SSH_OPTS", u.SSHOpts},
	} {
		var warns []string
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
	if err != nil {
		return nil, j.deviceTrouble(ctx, "SSH options", err), false
	}
	j.step("connecting to %s@%s:%d", o.User, o.Host, o.Port)
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
