package migrate

import (
	"context"
	"os/user"

	"github.com/fleetmig/balena-migrate/internal/remote"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/fleetmig/balena-migrate/internal/worker"
)

// remoteOptions builds the SSH options for the unit: worker settings, then
// the worker's default OpenSSH options, then the unit's own (later wins).
func (j *job) remoteOptions() (remote.Options, error) {
	u, m := j.s.Unit, j.s.Migrate
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
		Log:            j.ulog.Log,
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
			j.warn("%s: %s", set.name, w)
		}
	}
	return o, nil
}

// connect opens the SSH connection, or says what becomes of the unit.
func (j *job) connect(ctx context.Context) (Device, worker.Outcome, bool) {
	o, err := j.remoteOptions()
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
