package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/backoff"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// This file is the one place that decides what an error means for a unit:
// which FAIL_CLASS it gets and whether trying again can help. Every step
// hands its errors to deviceTrouble or cloudTrouble below.

// action is what becomes of a unit after an error.
type action int

const (
	failNow    action = iota // retrying cannot help: fail/ with the class
	retryLater               // device or network trouble: units/ with a growing delay, MIG_CONN_ATTEMPTS times
	askLater                 // balena trouble: units/ after MIG_RECONN_TIME, not counted against the unit
	stopWorker               // no unit can get past it: hand the unit back and stop the worker
)

// failure is one row of the table.
type failure struct {
	err    error // matched with errors.Is
	class  devproto.Class
	action action
	advice string // what the operator should do, for FAIL_MSG
}

// failures is the table, first match wins. A *DeviceError (balena-migrate's
// own verdict) is matched before it and keeps the class the device gave.
func failures() []failure {
	return []failure{
		{remote.ErrHostKey, devproto.ClassHostKey, failNow, "the device's host key changed: verify the device, then fix known_hosts; the unit is not retried"},
		{remote.ErrAuth, devproto.ClassAuth, failNow, "check the user, password or key; the unit is not retried"},
		{usage.Err, devproto.ClassConfigError, failNow, "fix the unit's settings, then migdb-add-unit --retry"},
		{remote.ErrTimeout, devproto.ClassTimeout, retryLater, ""},
		{remote.ErrDNS, devproto.ClassDNS, retryLater, ""},
		{remote.ErrRefused, devproto.ClassRefused, retryLater, ""},
		{remote.ErrUnreachable, devproto.ClassUnreachable, retryLater, ""},
		{remote.ErrTransfer, devproto.ClassTransfer, retryLater, ""},
		{balena.ErrTransient, devproto.ClassAPI, askLater, ""},
		{balena.ErrUnauthorized, devproto.ClassAPI, stopWorker, ""}, // the error says what to do (balena.TokenAdvice)
	}
}

// DeviceError is a failure balena-migrate reported on the device, with the
// class from its final line.
type DeviceError struct {
	Class devproto.Class
	Msg   string
}

func (e *DeviceError) Error() string { return e.Msg }

// classify finds err's row; unknown errors get fallback.
func classify(err error, fallback failure) failure {
	var de *DeviceError
	if errors.As(err, &de) {
		return failure{class: de.Class, action: failNow}
	}
	for _, f := range failures() {
		if errors.Is(err, f.err) {
			return f
		}
	}
	return fallback
}

// deviceTrouble decides what a failed step on the device means for the
// unit; errors of no known class are transfer trouble, tried again.
func (j *job) deviceTrouble(ctx context.Context, what string, err error) worker.Outcome {
	return j.decide(ctx, what, err, failure{class: devproto.ClassTransfer, action: retryLater})
}

// cloudTrouble decides what a failed balena call means; errors of no known
// class fail the unit with class.
func (j *job) cloudTrouble(ctx context.Context, class devproto.Class, what string, err error) worker.Outcome {
	return j.decide(ctx, what, err, failure{class: class, action: failNow})
}

func (j *job) decide(ctx context.Context, what string, err error, fallback failure) worker.Outcome {
	if stopped(ctx) {
		return worker.HandBack("worker stopping")
	}
	f := classify(err, fallback)
	msg := fmt.Sprintf("%s: %v", what, err)
	switch f.action {
	case stopWorker:
		return worker.Outcome{Msg: msg, Stop: usage.Errorf("%s: %w", what, err)}
	case askLater:
		later := j.s.Migrate.ReconnTime
		j.u.SetDue(j.now.Add(later))
		return worker.Outcome{To: spool.Units, Unit: j.u, Msg: fmt.Sprintf("%s: balena is unavailable (%v); trying again in %v", what, err, later)}
	case retryLater:
		return j.retry(what, msg, f.class)
	}
	if f.advice != "" {
		msg += " (" + f.advice + ")"
	}
	return j.fail(f.class, msg)
}

// retry puts the unit back with a growing delay until the attempts are
// used up.
func (j *job) retry(what, msg string, class devproto.Class) worker.Outcome {
	tries, _ := j.u.Int(unit.FieldConnRetries)
	tries++
	j.u.Set(unit.FieldConnRetries, strconv.Itoa(tries))
	j.u.Set(unit.FieldTransferFail, unit.Sanitize(string(class)+": "+msg))
	attempts := j.s.Migrate.ConnAttempts
	if tries >= attempts {
		return j.fail(class, fmt.Sprintf("%s (attempt %d of %d; no more retries)", msg, tries, attempts))
	}
	wait := backoff.Doubling(j.s.Migrate.ReconnTime, maxBackoff, tries)
	j.u.SetDue(j.now.Add(wait))
	return worker.Outcome{To: spool.Units, Unit: j.u, Class: class,
		Msg: fmt.Sprintf("%s failed (%s, attempt %d of %d); trying again in %v", what, class, tries, attempts, wait)}
}

// fail ends the unit in fail/.
func (j *job) fail(class devproto.Class, msg string) worker.Outcome {
	return worker.Fail(j.u, class, msg, j.now)
}

// maxBackoff caps the wait between connection attempts.
const maxBackoff = 24 * time.Hour
