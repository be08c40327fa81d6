package stage2_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
	"github.com/fleetmig/balena-migrate/internal/testenv/vmtest"
)

// esbFixture is a stage-2 boot under Debian's generic kernel with qemu's
// PC watchdog (i6300esb: 1..2046 s, 30 s by default) and WATCHDOG=3000,
// which its driver refuses, as a Raspberry Pi's bcm2835_wdt refused 300 s
// before 2024. The init-top step (--early) arms it.
func esbFixture(t *testing.T) *vmFixture {
	t.Helper()
	k, err := vmtest.FindGenericKernel()
	if err != nil {
		t.Fatal(err)
	}
	fx := newVMFixture(t, false)
	fx.kernel, fx.early = k, true
	fx.modules = append(vmtest.GenericModules(), "i6300esb")
	fx.qemuArgs = []string{"-device", "i6300esb"}
	fx.cfg.Watchdog = 3000
	return fx
}

// A hardware watchdog that cannot count WATCHDOG seconds keeps its own 30
// s. The init-top step feeds it at a third of that until stage 2 takes it
// over, so an initramfs that takes 45 s to get there (fsck, a slow disk) is
// not reset; stage 2 feeds it at a third of it too, so a flash that takes
// twice as long (a disk writing 1 MiB/s) finishes. Armed and left alone,
// or fed every WATCHDOG/3 = 1000 s, it would reset the machine in either.
func TestVMStage2HardwareWatchdogRefusesTheTimeout(t *testing.T) {
	t.Parallel()
	fx := esbFixture(t)
	fx.addDiskOpt("throttling.bps-write=1048576")
	fx.delay = 45 * time.Second
	start := time.Now()
	res, err := fx.bootErr(t)
	if errors.Is(err, vmtest.ErrReset) {
		t.Fatalf("the watchdog reset the machine while stage 2 flashed (after %v)\nconsole:\n%s", time.Since(start).Round(time.Second), res.Console)
	}
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, %v\nconsole:\n%s", res.ExitCode, err, res.Console)
	}
	for _, want := range []string{
		`watchdog "i6300ESB timer" (built in): the driver refused 3000 s (invalid argument) and keeps 30 s; it allows at most 2046 s`,
		"armed: fed every 10s until stage 2 takes it over, for 49m30s at most",
		"the init-top feeder (pid ",
		`watchdog "i6300ESB timer" taken over: the driver refused 3000 s (invalid argument) and keeps 30 s`,
		"balenaOS installed",
		"watchdog stopped after ",
	} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The flash outlasted the watchdog's own timeout: it had to be fed.
	if m := regexp.MustCompile(`flashed [0-9.]+ MiB to /dev/vda in ([0-9hms.]+) `).FindStringSubmatch(res.Console); m == nil {
		t.Errorf("console lacks the flash time:\n%s", res.Console)
	} else if d, err := time.ParseDuration(m[1]); err != nil || d < 40*time.Second {
		t.Errorf("the flash took %v, not longer than the 30 s timeout by a margin: the test proves nothing", d)
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}

// The same watchdog still resets a stage 2 that stops: once stage 2 holds
// it nobody else feeds it (the init-top feeder has let go), and 30 s after
// stage 2's last feed the machine resets.
func TestVMStage2HardwareWatchdogResetsAFrozenStage2(t *testing.T) {
	t.Parallel()
	fx := esbFixture(t)
	fx.freeze = true
	res, err := fx.bootErr(t)
	if !errors.Is(err, vmtest.ErrReset) {
		t.Fatalf("want a watchdog reset, got exit %d, %v\nconsole:\n%s", res.ExitCode, err, res.Console)
	}
	if !strings.Contains(res.Console, "VMTEST-FROZEN") || strings.Contains(res.Console, "VMTEST-NOT-RESET") {
		t.Fatalf("console:\n%s", res.Console)
	}
	if h, _ := testimg.SHA256File(fx.disk, -1); h != fx.diskHash {
		t.Error("the disk changed: stage 2 was frozen before the point of no return")
	}
}
