package stage1

import (
	"fmt"
	"io"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
)

// Log writes the lines the fleet worker reads (devproto.Line).
type Log struct {
	W   io.Writer
	Now func() time.Time
}

func (l *Log) line(level devproto.Level, format string, a ...any) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	io.WriteString(l.W, devproto.Line(now(), level, fmt.Sprintf(format, a...)))
}

// Info logs progress.
func (l *Log) Info(format string, a ...any) { l.line(devproto.Info, format, a...) }

// Warn logs something the operator should know but that does not stop the run.
func (l *Log) Warn(format string, a ...any) { l.line(devproto.Warn, format, a...) }

// Error logs the failure that stops the run.
func (l *Log) Error(format string, a ...any) { l.line(devproto.Error, format, a...) }
