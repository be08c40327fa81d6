// Package logging sets up the migdb programs' logs: the process log (console
// lines like the original scripts' `[ts binary pid LEVEL]: message`, or JSON
// for machines) and the per-unit log files in db/log.
//
// Nothing here knows about secrets; callers never pass passwords or tokens
// to a logger. Redact is a last line of defence for text that came from
// elsewhere (remote output, error messages).
package logging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Options says where and how a process logs.
type Options struct {
	Binary string // program name in each line
	To     string // "" for stdout; a directory means <dir>/<binary>-<pid>.log
	Format string // "console" or "json"
	Color  string // "on", "off" or "" (auto: terminal and no NO_COLOR)
	Level  string // "debug", "info", "warn" or "error"; "" is info
}

// Open returns the process logger and a closer for its file (if any).
func Open(o Options) (zerolog.Logger, io.Closer, error) {
	var out io.Writer = os.Stdout
	var closer io.Closer = io.NopCloser(nil)
	tty := term.IsTerminal(int(os.Stdout.Fd()))
	if o.To != "" {
		path := o.To
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, fmt.Sprintf("%s-%d.log", o.Binary, os.Getpid()))
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return zerolog.Nop(), nil, fmt.Errorf("log file %s: %w", path, err)
		}
		out, closer, tty = f, f, false
	}
	l := New(out, o.Binary, o.Format, colorWanted(o.Color, tty))
	if o.Level != "" {
		lvl, err := zerolog.ParseLevel(o.Level)
		if err != nil {
			closer.Close()
			return zerolog.Nop(), nil, fmt.Errorf("log level %q: %w", o.Level, err)
		}
		l = l.Level(lvl)
	}
	return l, closer, nil
}

// New builds a logger writing to w. It logs INFO and above unless Open is
// asked for another level: per-request debug lines of the balena client
// would drown a fleet run.
func New(w io.Writer, binary, format string, color bool) zerolog.Logger {
	if format == "json" {
		return zerolog.New(w).Level(zerolog.InfoLevel).With().Timestamp().Str("bin", binary).Int("pid", os.Getpid()).Logger()
	}
	return zerolog.New(Console(w, fmt.Sprintf("%s %d", binary, os.Getpid()), color)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// Console renders zerolog events as `[ts prefix LEVEL]: message key=value`.
// Every part is coloured here, by color alone: zerolog's own colouring
// follows NO_COLOR even when the operator asked for --color ON.
func Console(w io.Writer, prefix string, color bool) zerolog.ConsoleWriter {
	paint := func(s string, code int) string {
		if !color {
			return s
		}
		return fmt.Sprintf("\x1b[%dm%s\x1b[0m", code, s)
	}
	return zerolog.ConsoleWriter{
		Out:        w,
		NoColor:    !color,
		TimeFormat: time.RFC3339,
		PartsOrder: []string{zerolog.TimestampFieldName, zerolog.LevelFieldName, zerolog.MessageFieldName},
		FormatTimestamp: func(i any) string {
			return fmt.Sprintf("[%v %s", i, prefix)
		},
		FormatLevel: func(i any) string {
			l := strings.ToUpper(fmt.Sprint(i))
			if l == "WARN" || l == "WARNING" {
				l = "WARN"
			}
			switch l {
			case "ERROR", "FATAL":
				l = paint(l, 31)
			case "WARN":
				l = paint(l, 33)
			}
			return l + "]:"
		},
		FormatMessage:       func(i any) string { return fmt.Sprint(i) },
		FormatFieldName:     func(i any) string { return paint(fmt.Sprintf("%s=", i), 36) },
		FormatErrFieldName:  func(i any) string { return paint(fmt.Sprintf("%s=", i), 36) },
		FormatErrFieldValue: func(i any) string { return paint(fmt.Sprint(i), 31) },
	}
}

func colorWanted(setting string, tty bool) bool {
	switch strings.ToLower(setting) {
	case "on":
		return true
	case "off":
		return false
	}
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	return tty
}

// UnitLog is a unit's own log file in db/log, kept across stages: worker
// steps as log lines and the device's output verbatim.
type UnitLog struct {
	f   *os.File
	Log zerolog.Logger
}

// OpenUnitLog opens (appending) the unit log at path, mode 0600.
func OpenUnitLog(path, binary string) (*UnitLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("unit log %s: %w", path, err)
	}
	return &UnitLog{f: f, Log: New(f, binary, "console", false)}, nil
}

// Write appends raw text (device output).
func (u *UnitLog) Write(p []byte) (int, error) { return u.f.Write(p) }

// Close closes the file.
func (u *UnitLog) Close() error { return u.f.Close() }

// Redact replaces every non-empty secret in s with "***".
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}
