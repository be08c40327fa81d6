// Package exitcode is the one map from an error to a program's exit code,
// for all four programs: balena-migrate on the device and migdb-add-unit,
// migdb-migrate and migdb-check-done on the fleet host. Libraries and
// subcommands return errors (bad input as internal/usage errors); each
// program's main alone calls os.Exit, with Of. It is shared code, importing
// neither side, so that the device program and the fleet programs can use
// the same map.
package exitcode

import (
	"errors"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

// The exit codes of every program.
const (
	OK     = 0 // success
	Failed = 1 // the job failed
	Usage  = 2 // bad usage or settings: a usage error
)

// Coder is an error that carries the exit code its program must end
// with, as the operator asked: stage 2 stopped by NO_FLASH when TERM_EXIT
// says "exit N".
type Coder interface {
	error
	ExitCode() int
}

// Of is the exit code for err, the result of a program's run.
func Of(err error) int {
	var c Coder
	switch {
	case err == nil:
		return OK
	case usage.Is(err):
		return Usage
	case errors.As(err, &c):
		return c.ExitCode()
	}
	return Failed
}
