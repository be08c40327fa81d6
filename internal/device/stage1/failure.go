package stage1

import (
	"errors"
	"syscall"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Errors that exist only to be classified.
var (
	ErrOS = errors.New("unsupported OS")
	// ErrDeviceType is the detection's own error, so that its message does
	// not say "unsupported device" twice.
	ErrDeviceType    = devicetype.ErrUnknown
	ErrAlreadyBalena = errors.New("already running balenaOS")
)

// classes maps errors to the failure classes stage 1 names on its last
// line (devproto.Failure), one per kind of failure the operator fixes
// differently. The first match wins, so a backup that ran out of space is
// no_space (the fix is to free space, not to change the backup script).
var classes = []struct {
	class devproto.Class
	is    func(error) bool
}{
	{devproto.ClassConfigError, usage.Is},
	{devproto.ClassNoSpace, func(err error) bool { return errors.Is(err, syscall.ENOSPC) || errors.Is(err, errNoSpace) }},
	{devproto.ClassReadOnly, func(err error) bool { return errors.Is(err, syscall.EROFS) }},
	{devproto.ClassAlreadyBalena, func(err error) bool { return errors.Is(err, ErrAlreadyBalena) }},
	{devproto.ClassOS, func(err error) bool { return errors.Is(err, ErrOS) }},
	{devproto.ClassDeviceType, func(err error) bool {
		return errors.Is(err, ErrDeviceType) || errors.Is(err, ErrWrongDevice) || errors.Is(err, ErrUnknownTarget)
	}},
	{devproto.ClassBackup, func(err error) bool { return errors.Is(err, ErrBackup) }},
	{devproto.ClassNetwork, func(err error) bool { return errors.Is(err, ErrNetwork) }},
	{devproto.ClassSecureBoot, func(err error) bool { return errors.Is(err, ErrSecureBoot) }},
}

// ClassOf returns the failure class of a stage-1 error.
func ClassOf(err error) devproto.Class {
	for _, c := range classes {
		if c.is(err) {
			return c.class
		}
	}
	return devproto.ClassStage1
}

// Failed prints the final line of a failed run, the verdict the fleet
// worker reads.
func (l *Log) Failed(err error) {
	l.Error("%s", devproto.NewFailure(ClassOf(err), err.Error()).Format())
}
