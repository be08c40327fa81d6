package watchdog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// timer is a driver with a range of timeouts it takes; outside it, it
// refuses with EINVAL and keeps what it had, as the watchdog core does.
type timer struct {
	min, max int // 0 max: no limit
	current  int
	getErr   error
}

func (t *timer) SetTimeout(s int) error {
	if s < t.min || t.max > 0 && s > t.max {
		return unix.EINVAL
	}
	t.current = s
	return nil
}

func (t *timer) Timeout() (int, error) { return t.current, t.getErr }

func TestConfigureGoesByWhatTheDriverRunsWith(t *testing.T) {
	for _, tc := range []struct {
		name         string
		drv          timer
		ask          int
		want         int
		refused      bool
		wantInterval time.Duration
	}{
		{"taken", timer{min: 1, max: 2046, current: 30}, 300, 300, false, 100 * time.Second},
		// The Raspberry Pi's bcm2835_wdt before its 2024 fix: at most 15 s.
		{"beyond the hardware: the default stays", timer{min: 1, max: 15, current: 15}, 300, 15, true, 5 * time.Second},
		// qemu's i6300esb under Debian's kernel: 1..2046 s, 30 s by default.
		{"i6300esb and WATCHDOG=3000", timer{min: 1, max: 2046, current: 30}, 3000, 30, true, 10 * time.Second},
		{"refused and silent", timer{max: 15, current: 15, getErr: unix.ENOTTY}, 300, 0, true, unknownInterval},
		{"taken but silent", timer{current: 15, getErr: unix.ENOTTY}, 60, 60, false, 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drv := tc.drv
			s := Configure(&drv, tc.ask)
			if s.Timeout != tc.want || (s.Refused != nil) != tc.refused || s.Interval() != tc.wantInterval {
				t.Fatalf("got %+v interval %v, want timeout %d refused %v interval %v", s, s.Interval(), tc.want, tc.refused, tc.wantInterval)
			}
			if tc.refused && !errors.Is(s.Refused, unix.EINVAL) {
				t.Errorf("Refused = %v, want EINVAL", s.Refused)
			}
			if s.Short() != (tc.want < tc.ask) {
				t.Errorf("Short() = %v", s.Short())
			}
			// A feeder going by the setting feeds well inside the timeout.
			if s.Timeout > 0 && 3*s.Interval() > time.Duration(s.Timeout)*time.Second {
				t.Errorf("interval %v too long for %d s", s.Interval(), s.Timeout)
			}
		})
	}
}

func TestMaxTimeout(t *testing.T) {
	dir := t.TempDir()
	if _, ok := MaxTimeout(dir); ok {
		t.Fatal("a directory without max_timeout gave a value")
	}
	os.WriteFile(filepath.Join(dir, "max_timeout"), []byte("2046\n"), 0o644)
	if n, ok := MaxTimeout(dir); !ok || n != 2046 {
		t.Fatalf("got %d %v", n, ok)
	}
}

// The log says the driver's answer, not the request the device wrapped it in.
func TestSettingSaysTheDriversAnswer(t *testing.T) {
	s := Setting{Asked: 3000, Timeout: 30, Refused: fmt.Errorf("watchdog /dev/watchdog: set the timeout to 3000 s: %w", unix.EINVAL)}
	if got, want := s.String(), "the driver refused 3000 s (invalid argument) and keeps 30 s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
