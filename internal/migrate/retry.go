package migrate

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"time"

	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/remote"
	"github.com/fleetmig/balena-migrate/internal/spool"
	"github.com/fleetmig/balena-migrate/internal/unit"
	"github.com/fleetmig/balena-migrate/internal/worker"
)

// maxBackoff caps the wait between connection attempts.
const maxBackoff = 24 * time.Hour

// remoteOptions builds the SSH options for the unit: worker settings, then
// the worker's default OpenSSH options, then the unit's own (later wins).
func (j *job) remoteOptions() (remote.Options, error) {
	s := j.s
	policy, err := remote.ParsePolicy(s.Lower(config.HostKeyPolicy))
	if err != nil {
		return remote.Options{}, err
	}
	o := remote.Options{
		Host:           s.String(config.SSHHost),
		Port:           s.Int(config.SSHPort),
		User:           s.String(config.SSHUser),
		Password:       s.String(config.SSHPasswd),
		KnownHosts:     s.Path(config.KnownHosts),
		HostKeyPolicy:  policy,
		ConnectTimeout: s.Duration(config.ConnTimeout),
		Log:            j.ulog.Log,
	}
	if o.User == "" {
		// As ssh(1) does: the local user name.
		if me, err := user.Current(); err == nil {
			o.User = me.Username
		}
	}
	if k := s.Path(config.SSHKey); k != "" {
		o.KeyFiles = []string{k}
	}
	for _, set := range []struct{ name, opts string }{
		{"--ssh-opts (MIG_DEF_SSH_OPTS)", s.String(config.DefSSHOpts)},
		{"the unit's MIG_SSH_OPTS", j.u.Get(config.SSHOpts)},
	} {
		var warns []string
		o, warns, err = o.WithSSHOpts(set.opts)
		if err != nil {
			return o, fmt.Errorf("%s: %w", set.name, err)
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
		return nil, j.fail(unit.FailConfigError, err.Error()), false
	}
	j.step("connecting to %s@%s:%d", o.User, o.Host, o.Port)
	dial := j.Dial
	if dial == nil {
		dial = func(ctx context.Context, o remote.Options) (Device, error) { return remote.Dial(ctx, o) }
	}
	dev, err := dial(ctx, o)
	if err != nil {
		return nil, j.deviceTrouble(ctx, "connecting", err), false
	}
	return dev, worker.Outcome{}, true
}

// deviceTrouble decides what a failed SSH step means for the unit. A
// rejected login or a changed host key fails it at once (retrying cannot
// help and could hide an attack); network trouble puts it back in units/
// with a growing delay until the attempts are used up.
func (j *job) deviceTrouble(ctx context.Context, what string, err error) worker.Outcome {
	if stopped(ctx) {
		return worker.HandBack("worker stopping")
	}
	class := unit.FailClass(remote.Class(err))
	msg := fmt.Sprintf("%s: %v", what, err)
	switch class {
	case unit.FailAuth:
		return j.fail(class, msg+" (check the user, password or key; the unit is not retried)")
	case unit.FailHostKey:
		return j.fail(class, msg+" (the device's host key changed: verify the device, then fix known_hosts; the unit is not retried)")
	case unit.FailDNS, unit.FailRefused, unit.FailUnreachable, unit.FailTimeout, unit.FailTransfer:
	default:
		class = unit.FailTransfer
	}
	tries, _ := j.u.Int(unit.FieldConnRetries)
	tries++
	j.u.Set(unit.FieldConnRetries, strconv.Itoa(tries))
	j.u.Set(unit.FieldTransferFail, unit.Sanitize(string(class)+": "+msg))
	attempts := j.s.Int(config.ConnAttempts)
	if tries >= attempts {
		return j.fail(class, fmt.Sprintf("%s (attempt %d of %d; no more retries)", msg, tries, attempts))
	}
	wait := backoff(j.s.Duration(config.ReconnTime), tries)
	j.u.SetDue(j.now.Add(wait))
	return worker.Outcome{To: spool.Units, Unit: j.u,
		Msg: fmt.Sprintf("%s failed (%s, attempt %d of %d); trying again in %v", what, class, tries, attempts, wait)}
}

// backoff is base·2^(tries-1), capped at a day.
func backoff(base time.Duration, tries int) time.Duration {
	d := base
	for i := 1; i < tries && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// transfer copies the migration environment into RemoteDir.
func (j *job) transfer(ctx context.Context, dev Device) (worker.Outcome, bool) {
	path := envPath(j.s)
	src, err := j.source(path)
	if err != nil {
		return j.fail(unit.FailConfigError, fmt.Sprintf("migration environment %s: %v", path, err)), false
	}
	timeout := j.s.Duration(config.TxTimeout)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	j.step("copying the migration environment %s to %s/ (limit %v)", path, RemoteDir, timeout)
	st, err := dev.Upload(tctx, src, RemoteDir, remote.UploadOptions{Interval: 5 * time.Second,
		Progress: func(p remote.Progress) {
			j.log.Info().Str("file", p.File).Int64("done", p.Done).Int64("total", p.Total).
				Str("rate", fmt.Sprintf("%.1f MB/s", p.Rate/1e6)).Msg("transfer progress")
		}})
	if err != nil {
		if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w (took longer than MIG_TX_TIMEOUT=%v)", err, timeout)
		}
		return j.deviceTrouble(ctx, "copying the migration environment", err), false
	}
	j.step("migration environment on the device: %d files, %d sent, %d resumed, %d already there, %.1f MB in %v (%s)",
		st.Files, st.Sent, st.Resumed, st.Skipped, float64(st.Bytes)/1e6, st.Duration.Round(time.Millisecond), st.Method)
	return worker.Outcome{}, true
}
