package stage2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
	"github.com/fleetmig/balena-migrate/internal/device/watchdog"
)

// Stall limits: how long stage 2 feeds the watchdog without progress.
// Before the point of no return a reset only boots the old system again,
// so a stall is cut short. After it a reset cannot bring the old system
// back and a slow disk taken for a dead one would be cut off mid-write, so
// only a write that has not moved for a long time (a dead disk: a reset is
// no worse than the hang) stops the feeding.
const (
	stallBefore = 3 * time.Minute
	stallAfter  = 15 * time.Minute
)

// ArmWatchdog is the first half of Early, run by the initramfs init-top
// script before anything else can hang: it loads the watchdog driver stage 1
// chose, starts the watchdog with the WATCHDOG timeout and leaves it
// running. Stage 2 takes it over later; if the boot hangs before that, the
// machine resets. A driver that cannot count WATCHDOG seconds (a Raspberry
// Pi's bcm2835_wdt before 2024 stops at 15 s) keeps a shorter timeout: then
// a feeder process started here feeds it every third of that timeout until
// stage 2 takes over, for WATCHDOG seconds at most, so that the initramfs
// gets the time WATCHDOG promises and a hang is still reset. A failure only
// costs the protection, never the boot.
func ArmWatchdog(ctx context.Context, cfg s2config.Config, console io.Writer) {
	log := NewLogger(console)
	if cfg.Watchdog == 0 {
		return
	}
	if m := cfg.WatchdogModule; m != "" {
		if out, err := exec.CommandContext(ctx, "modprobe", m).CombinedOutput(); err != nil {
			log.Warnf("watchdog: modprobe %s: %v: %s; the stage-2 boot is not guarded", m, err, strings.TrimSpace(string(out)))
			return
		}
	}
	dev, err := openWatchdog(ctx, 5*time.Second)
	if err != nil {
		log.Warnf("watchdog: %v; the stage-2 boot is not guarded", err)
		return
	}
	s := watchdog.Configure(dev, cfg.Watchdog)
	name := cfg.WatchdogModule
	if name == "" {
		name = "built in"
	}
	if !s.Short() {
		log.Infof("watchdog %q (%s) armed: the machine resets unless stage 2 takes it over within %d s", dev.Identity(), name, s.Timeout)
		if err := dev.Leave(); err != nil {
			log.Warnf("watchdog: %v", err)
		}
		return
	}
	if max, ok := watchdog.MaxTimeout(watchdog.SysDir); ok {
		log.Warnf("watchdog %q (%s): %s; it allows at most %d s", dev.Identity(), name, s, max)
	} else {
		log.Warnf("watchdog %q (%s): %s", dev.Identity(), name, s)
	}
	budget := time.Duration(cfg.Watchdog-s.Timeout) * time.Second
	if err := startFeeder(dev, s.Interval(), budget, console); err != nil {
		log.Warnf("watchdog: %v; it resets the machine unless stage 2 takes it over within %d s", err, s.Timeout)
		dev.Leave()
		return
	}
	log.Infof("watchdog %q (%s) armed: fed every %v until stage 2 takes it over, for %v at most; then it resets the machine within %d s",
		dev.Identity(), name, s.Interval(), budget, s.Timeout)
	if err := dev.Leave(); err != nil {
		log.Warnf("watchdog: %v", err)
	}
}

// openWatchdog waits for the device node a freshly loaded driver creates,
// and for the init-top feeder to let go of the device.
func openWatchdog(ctx context.Context, wait time.Duration) (*watchdog.Device, error) {
	deadline := time.Now().Add(wait)
	for {
		dev, err := watchdog.Open(watchdog.DefaultPath)
		if err == nil || !(errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.EBUSY)) || time.Now().After(deadline) {
			return dev, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wdDevice is the watchdog stage 2 holds: a *watchdog.Device.
type wdDevice interface {
	watchdog.Timer
	watchdog.Feedable
	Identity() string
	Stop() error
}

// guard is stage 2's hold on the watchdog.
type guard struct {
	dev     wdDevice
	timeout int // seconds it runs with; 0: unknown
	feeder  *watchdog.Feeder
	cancel  context.CancelFunc
	done    chan struct{}
	feeds   atomic.Int64
}

// takeOverWatchdog opens the watchdog the initramfs armed (after stopping
// the init-top feeder, if one runs) and feeds it while stage 2 makes
// progress.
func (r *run) takeOverWatchdog(ctx context.Context) {
	if r.cfg.Watchdog == 0 {
		return
	}
	stopFeeder(r.log)
	dev, err := openWatchdog(ctx, 5*time.Second)
	if err != nil {
		r.log.Warnf("watchdog: %v; stage 2 runs without it", err)
		return
	}
	r.guardWith(dev)
}

// guardWith feeds dev at a third of the timeout its driver really runs
// with, which may be shorter than WATCHDOG.
func (r *run) guardWith(dev wdDevice) {
	s := watchdog.Configure(dev, r.cfg.Watchdog)
	if s.Refused != nil || s.Timeout != s.Asked {
		r.log.Warnf("watchdog: %s: fed every %v", s, s.Interval())
	}
	g := &guard{dev: dev, timeout: s.Timeout, done: make(chan struct{})}
	g.feeder = watchdog.NewFeeder(countFeeds{dev: dev, n: &g.feeds}, s.Interval(), stallBefore)
	g.feeder.Stalled = func(idle time.Duration) {
		r.log.Warnf("watchdog: no progress for %v: no longer fed, it resets the machine within %s", idle.Round(time.Second), g.within())
	}
	g.feeder.FeedFailed = func(err error) { r.log.Warnf("watchdog: %v", err) }
	fctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		defer close(g.done)
		g.feeder.Run(fctx)
	}()
	r.guard = g
	r.log.Infof("watchdog %q taken over: %s, fed while stage 2 makes progress (stall limit %v)", dev.Identity(), s, stallBefore)
}

// within says how soon the watchdog resets once it is no longer fed.
func (g *guard) within() string {
	if g.timeout <= 0 {
		return "its driver's timeout"
	}
	return strconv.Itoa(g.timeout) + " s"
}

type countFeeds struct {
	dev watchdog.Feedable
	n   *atomic.Int64
}

func (c countFeeds) Feed() error {
	err := c.dev.Feed()
	if err == nil {
		c.n.Add(1)
	}
	return err
}

// progress marks that stage 2 moved (no-op without a watchdog).
func (r *run) progress() {
	if r.guard != nil {
		r.guard.feeder.Progress()
	}
}

// progressLog logs a line of the verify or flash progress, which comes at
// least every 10 s while bytes move, and counts it as progress.
func (r *run) progressLog(format string, args ...any) {
	r.progress()
	r.log.Infof(format, args...)
}

// watchdogPastPointOfNoReturn gives the flash the long stall limit.
func (r *run) watchdogPastPointOfNoReturn() {
	if r.guard != nil {
		r.guard.feeder.SetStall(stallAfter)
	}
}

// releaseWatchdog stops feeding and disarms the watchdog with the magic
// close, before stage 2 reboots or hands back to the old system: neither the
// old system nor balenaOS knows it is running.
func (r *run) releaseWatchdog() {
	g := r.guard
	if g == nil {
		return
	}
	r.guard = nil
	g.cancel()
	<-g.done
	if err := g.dev.Stop(); errors.Is(err, watchdog.ErrCannotStop) {
		r.log.Warnf("%v: it resets the machine in %s unless the next system feeds it; that boot is the old system (or balenaOS once flashed)", err, g.within())
		return
	} else if err != nil {
		r.log.Warnf("watchdog: %v", err)
		return
	}
	r.log.Infof("watchdog stopped after %d feeds", g.feeds.Load())
}

// watchReads marks progress while the process pid reads (its rchar in
// /proc/PID/io grows), until done is closed.
func (r *run) watchReads(pid int, done <-chan struct{}) {
	if r.guard == nil {
		return
	}
	last := int64(-1)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if n, err := readChars(pid); err == nil && n != last {
			last = n
			r.progress()
		}
	}
}

func readChars(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io has no rchar", pid)
}
