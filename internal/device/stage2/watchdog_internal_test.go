package stage2

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

// refusingWatchdog is a driver that counts at most max seconds: a longer
// timeout is refused with EINVAL and it keeps its default, as the Raspberry
// Pi's bcm2835_wdt (15 s) did before 2024 and i6300esb (2046 s) does.
type refusingWatchdog struct {
	max, current int
	mu           sync.Mutex
	feeds        []time.Time
}

func (w *refusingWatchdog) SetTimeout(s int) error {
	if s > w.max {
		return unix.EINVAL
	}
	w.current = s
	return nil
}
func (w *refusingWatchdog) Timeout() (int, error) { return w.current, nil }
func (w *refusingWatchdog) Identity() string      { return "short timer" }
func (w *refusingWatchdog) Stop() error           { return nil }
func (w *refusingWatchdog) Feed() error {
	w.mu.Lock()
	w.feeds = append(w.feeds, time.Now())
	w.mu.Unlock()
	return nil
}

// Stage 2 feeds a watchdog that refused WATCHDOG at a third of the timeout
// the driver kept, so no gap between feeds reaches it; going by WATCHDOG
// (300 s: every 100 s) the board would reset 3 s into stage 2.
func TestStage2FeedsAWatchdogThatRefusedTheTimeout(t *testing.T) {
	dev := &refusingWatchdog{max: 2, current: 3}
	var out bytes.Buffer
	r := &run{cfg: s2config.Config{Watchdog: 300}, log: NewLogger(&out)}
	r.guardWith(dev)
	time.Sleep(3500 * time.Millisecond)
	r.releaseWatchdog()
	dev.mu.Lock()
	feeds := append([]time.Time{}, dev.feeds...)
	dev.mu.Unlock()
	if len(feeds) < 3 {
		t.Fatalf("fed %d times in 3.5 s; a 3 s watchdog would have reset\n%s", len(feeds), out.String())
	}
	for i := 1; i < len(feeds); i++ {
		if gap := feeds[i].Sub(feeds[i-1]); gap > 2*time.Second {
			t.Errorf("%v between feeds of a 3 s watchdog", gap)
		}
	}
	for _, want := range []string{"the driver refused 300 s", "keeps 3 s", "fed every 1s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFeederSpecAndProcesses(t *testing.T) {
	if e, b, err := parseFeederSpec("5s,4m55s"); err != nil || e != 5*time.Second || b != 295*time.Second {
		t.Fatalf("got %v %v %v", e, b, err)
	}
	for _, bad := range []string{"", "5s", "0s,1m", "5s,-1s", "x,1m"} {
		if _, _, err := parseFeederSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	proc := t.TempDir()
	for pid, cmdline := range map[string]string{
		"17":   "/bin/balena-migrate\x00stage2\x00--watchdog-feeder\x005s,4m55s\x00",
		"18":   "/bin/balena-migrate\x00stage2\x00--config\x00/etc/balena-migrate-stage2.conf\x00",
		"19":   "/bin/sh\x00-c\x00echo stage2 --watchdog-feeder\x00",
		"self": "/bin/balena-migrate\x00stage2\x00--watchdog-feeder\x005s,4m55s\x00",
	} {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
		os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(cmdline), 0o444)
	}
	if got := feederPIDs(proc); len(got) != 1 || got[0] != 17 {
		t.Fatalf("feeders %v, want [17]", got)
	}
}
