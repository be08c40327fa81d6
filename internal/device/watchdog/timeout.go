package watchdog

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Timer is the timeout side of a watchdog: a *Device.
type Timer interface {
	SetTimeout(seconds int) error
	Timeout() (int, error)
}

// Setting is the timeout a watchdog really runs with after Configure.
type Setting struct {
	Asked   int   // seconds asked for
	Timeout int   // seconds the driver runs with, read back; 0: it would not say
	Refused error // why the driver did not take Asked; nil when it did
}

// Configure asks t for seconds and reads back what the driver runs with:
// a driver may round the timeout, cap it, or refuse it and keep its own.
// Whoever feeds the watchdog must go by Timeout, never by Asked.
func Configure(t Timer, seconds int) Setting {
	s := Setting{Asked: seconds}
	s.Refused = t.SetTimeout(seconds)
	if got, err := t.Timeout(); err == nil && got > 0 {
		s.Timeout = got
	} else if s.Refused == nil {
		// It took the value but cannot say so: believe it.
		s.Timeout = seconds
	}
	return s
}

// unknownInterval is how often a watchdog whose timeout is unknown is fed:
// often enough for any hardware timeout of two seconds or more.
const unknownInterval = 500 * time.Millisecond

// Interval is how often to feed it: a third of the timeout it runs with.
func (s Setting) Interval() time.Duration {
	if s.Timeout <= 0 {
		return unknownInterval
	}
	return Interval(time.Duration(s.Timeout) * time.Second)
}

// Short reports whether the watchdog resets sooner than asked.
func (s Setting) Short() bool { return s.Timeout < s.Asked }

// String says what the driver did with the timeout asked for, for the log.
func (s Setting) String() string {
	switch {
	case s.Refused != nil && s.Timeout > 0:
		return fmt.Sprintf("the driver refused %d s (%s) and keeps %d s", s.Asked, why(s.Refused), s.Timeout)
	case s.Refused != nil:
		return fmt.Sprintf("the driver refused %d s (%s) and does not say what it keeps", s.Asked, why(s.Refused))
	case s.Timeout != s.Asked:
		return fmt.Sprintf("asked for %d s, the driver runs with %d s", s.Asked, s.Timeout)
	}
	return fmt.Sprintf("%d s timeout", s.Timeout)
}

// why is the driver's answer: its errno, the rest of err (the device and
// the request) being said around it.
func why(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// SysDir is the sysfs directory of the first watchdog, the one
// /dev/watchdog opens.
const SysDir = "/sys/class/watchdog/watchdog0"

// MaxTimeout reads the longest timeout the driver of the watchdog whose
// sysfs directory is dir accepts (max_timeout, CONFIG_WATCHDOG_SYSFS); ok is
// false when the kernel does not say.
func MaxTimeout(dir string) (seconds int, ok bool) {
	b, err := os.ReadFile(dir + "/max_timeout")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil && n > 0
}
