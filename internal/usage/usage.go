// Package usage marks the errors that come from bad input — a flag, a
// setting, a file the operator wrote — as opposed to a job that failed.
// Every program answers them with exit code 2 (README, Exit codes); only cmd/ decides
// exit codes, and it asks this package alone. Fleet and device code both
// use it, so it imports neither.
package usage

import (
	"errors"
	"fmt"
)

// Err is the mark: errors.Is(err, usage.Err) holds for every usage error.
var Err = errors.New("bad input")

// Error is a usage error; its text is its cause's.
type Error struct{ err error }

func (e *Error) Error() string   { return e.err.Error() }
func (e *Error) Unwrap() []error { return []error{Err, e.err} }

// Errorf builds a usage error; %w wraps as in fmt.Errorf.
func Errorf(format string, a ...any) error { return &Error{err: fmt.Errorf(format, a...)} }

// Wrap marks err as a usage error (nil stays nil).
func Wrap(err error) error {
	if err == nil || errors.Is(err, Err) {
		return err
	}
	return &Error{err: err}
}

// Is reports whether err is a usage error.
func Is(err error) bool { return errors.Is(err, Err) }
