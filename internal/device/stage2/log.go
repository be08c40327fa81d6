package stage2

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
)

// Logger writes `[<ISO ts> balena-migrate] LEVEL: message` lines to the
// console, keeps every line in RAM until it can be written to resin-data, and
// mirrors them to a file on LOG_DRIVE once that is mounted.
type Logger struct {
	mu      sync.Mutex
	console io.Writer
	ram     bytes.Buffer
	file    *os.File
	now     func() time.Time
}

// NewLogger logs to console (os.Stdout when nil) and RAM.
func NewLogger(console io.Writer) *Logger {
	if console == nil {
		console = os.Stdout
	}
	return &Logger{console: console, now: time.Now}
}

// Infof logs at INFO.
func (l *Logger) Infof(format string, args ...any) { l.line(devproto.Info, format, args...) }

// Warnf logs at WARN.
func (l *Logger) Warnf(format string, args ...any) { l.line(devproto.Warn, format, args...) }

// Errorf logs at ERROR.
func (l *Logger) Errorf(format string, args ...any) { l.line(devproto.Error, format, args...) }

func (l *Logger) line(level devproto.Level, format string, args ...any) {
	s := devproto.Line(l.now(), level, fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.console, s)
	l.ram.WriteString(s)
	if l.file != nil {
		l.file.WriteString(s)
	}
}

// MirrorTo appends everything logged so far, and every later line, to path.
func (l *Logger) MirrorTo(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := f.Write(l.ram.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("write log file %s: %w", path, err)
	}
	l.file = f
	return nil
}

// StopMirror syncs and closes the LOG_DRIVE file, if any.
func (l *Logger) StopMirror() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Sync()
	if cerr := l.file.Close(); err == nil {
		err = cerr
	}
	l.file = nil
	return err
}

// SaveTo writes everything logged so far to path, synced.
func (l *Logger) SaveTo(path string) error {
	l.mu.Lock()
	data := bytes.Clone(l.ram.Bytes())
	l.mu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save log: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save log %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save log %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}
