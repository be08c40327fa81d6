package stage1

import (
	"errors"
	"strings"
	"syscall"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Class is the failure class stage 1 names on its last line when it fails:
//
//	[<ISO ts> balena-migrate] ERROR: failed (<class>): <message>
//
// The fleet worker reads only that line, so the words below are a contract
// (docs/device-protocol.md; the fleet's unit.FailClass uses the same words).
type Class string

// The classes, one per kind of failure the operator fixes differently.
const (
	ClassConfigError   Class = "config_error"   // bad flag or config file (a usage error)
	ClassNoSpace       Class = "no_space"       // ENOSPC, or too little space/memory found by a check
	ClassReadOnly      Class = "read_only"      // EROFS
	ClassAlreadyBalena Class = "already_balena" // the device runs balenaOS already
	ClassOS            Class = "os"             // an OS release stage 1 does not support
	ClassDeviceType    Class = "device_type"    // an unsupported board, or an image for another one
	ClassBackup        Class = "backup"         // the backup step (BACKUP_SCRIPT / BACKUP_DIRECTORIES)
	ClassStage1        Class = "stage1"         // anything else
)

// Errors that exist only to be classified.
var (
	ErrOS = errors.New("unsupported OS")
	// ErrDeviceType is the detection's own error, so that its message does
	// not say "unsupported device" twice.
	ErrDeviceType    = devicetype.ErrUnknown
	ErrAlreadyBalena = errors.New("already running balenaOS")
)

// classes maps errors to classes; the first match wins, so a backup that
// ran out of space is no_space (the fix is to free space, not to change
// the backup script).
var classes = []struct {
	class Class
	is    func(error) bool
}{
	{ClassConfigError, usage.Is},
	{ClassNoSpace, func(err error) bool { return errors.Is(err, syscall.ENOSPC) || errors.Is(err, errNoSpace) }},
	{ClassReadOnly, func(err error) bool { return errors.Is(err, syscall.EROFS) }},
	{ClassAlreadyBalena, func(err error) bool { return errors.Is(err, ErrAlreadyBalena) }},
	{ClassOS, func(err error) bool { return errors.Is(err, ErrOS) }},
	{ClassDeviceType, func(err error) bool {
		return errors.Is(err, ErrDeviceType) || errors.Is(err, ErrWrongDevice) || errors.Is(err, ErrUnknownTarget)
	}},
	{ClassBackup, func(err error) bool { return errors.Is(err, ErrBackup) }},
}

// ClassOf returns the failure class of a stage-1 error.
func ClassOf(err error) Class {
	for _, c := range classes {
		if c.is(err) {
			return c.class
		}
	}
	return ClassStage1
}

// Failed prints the final line of a failed run. Multi-line messages (a
// program's output) are joined so that the verdict stays one line.
func (l *Log) Failed(err error) {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " | ")), " ")
	l.Error("failed (%s): %s", ClassOf(err), msg)
}
