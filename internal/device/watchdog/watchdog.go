// Package watchdog drives a Linux watchdog device (/dev/watchdog) for the
// stage-2 boot: opening it starts the timer, Feed restarts it, Stop disarms
// it with the magic close, and Leave closes it still running, so that a
// machine whose boot hangs is reset. A Feeder feeds it only while the work
// it guards makes progress.
package watchdog

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultPath is the watchdog device node the kernel's watchdog core creates
// for the first watchdog.
const DefaultPath = "/dev/watchdog"

// ErrCannotStop marks a watchdog that refused the magic close: its driver
// (or the kernel, CONFIG_WATCHDOG_NOWAYOUT) keeps it running once started.
var ErrCannotStop = errors.New("the watchdog cannot be stopped (nowayout)")

// Device is an open watchdog; while it is open and not fed, the machine
// resets when the timeout runs out.
type Device struct {
	f    *os.File
	path string
}

// Open opens and thereby starts the watchdog at path.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open watchdog %s: %w", path, err)
	}
	return &Device{f: f, path: path}, nil
}

// Identity is the driver's name for the watchdog ("Software Watchdog", ...).
func (d *Device) Identity() string {
	info, err := unix.IoctlGetWatchdogInfo(int(d.f.Fd()))
	if err != nil {
		return "unknown"
	}
	return string(bytes.TrimRight(info.Identity[:], "\x00"))
}

// SetTimeout asks the driver for a timeout of seconds. A driver may refuse
// it (EINVAL: beyond what its hardware counts, as the Raspberry Pi's
// bcm2835_wdt did above 15 s) and then keeps the timeout it had; Configure
// reads back what it really runs with.
func (d *Device) SetTimeout(seconds int) error {
	if err := unix.IoctlSetPointerInt(int(d.f.Fd()), unix.WDIOC_SETTIMEOUT, seconds); err != nil {
		return fmt.Errorf("watchdog %s: set the timeout to %d s: %w", d.path, seconds, err)
	}
	return nil
}

// Timeout reads the timeout the driver runs with (WDIOC_GETTIMEOUT).
func (d *Device) Timeout() (int, error) {
	got, err := unix.IoctlGetInt(int(d.f.Fd()), unix.WDIOC_GETTIMEOUT)
	if err != nil {
		return 0, fmt.Errorf("watchdog %s: read the timeout: %w", d.path, err)
	}
	return got, nil
}

// File is the open device, for handing it to another process, which then
// holds the watchdog open (the kernel stops it only at the last close).
func (d *Device) File() *os.File { return d.f }

// FromFile is a Device for a watchdog opened by another process and handed
// down as f.
func FromFile(f *os.File, path string) *Device { return &Device{f: f, path: path} }

// Feed restarts the timer.
func (d *Device) Feed() error {
	if err := unix.IoctlWatchdogKeepalive(int(d.f.Fd())); err != nil {
		return fmt.Errorf("feed watchdog %s: %w", d.path, err)
	}
	return nil
}

// Stop disarms the watchdog: the magic 'V' tells the driver that the close
// that follows is meant. A nowayout watchdog goes on running and Stop
// returns ErrCannotStop; the caller must then keep feeding it or accept a
// reset after the timeout.
func (d *Device) Stop() error {
	fd := int(d.f.Fd())
	// WDIOS_DISABLECARD fails with EBUSY exactly when the watchdog core
	// would not stop it on close either.
	disable := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETOPTIONS, unix.WDIOS_DISABLECARD)
	_, werr := d.f.Write([]byte("V"))
	cerr := d.f.Close()
	if errors.Is(disable, unix.EBUSY) {
		return fmt.Errorf("watchdog %s: %w", d.path, ErrCannotStop)
	}
	if werr != nil || cerr != nil {
		return fmt.Errorf("stop watchdog %s: %w", d.path, errors.Join(werr, cerr))
	}
	return nil
}

// Leave closes the device without the magic close: the watchdog keeps
// running and resets the machine unless someone opens and feeds it in time.
func (d *Device) Leave() error {
	return d.f.Close()
}
