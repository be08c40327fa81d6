package stage2

import (
	"context"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

// Early is `balena-migrate stage2 --early`, the first thing the stage-2 boot
// runs (the initramfs init-top script), before anything that can hang:
// it starts the watchdog (ArmWatchdog) and then puts back the boot files
// stage 1 changed and removes those it added for this one boot (a Pi's
// tryboot.txt, so that no later tryboot starts stage 2 again). On a board without a one-shot boot (a Raspberry Pi before
// the 4, a BeagleBone) the boot files are what make a reset boot the
// initramfs again; once they are back, any reset — the watchdog's after a
// hang while waiting for the root device or in fsck, or a power cut — boots
// the old system. Stage 2 restores them again later, which changes nothing.
func Early(ctx context.Context, cfg s2config.Config, console io.Writer) {
	ArmWatchdog(ctx, cfg, console)
	if len(cfg.RestoreBootFiles) == 0 && len(cfg.RemoveBootFiles) == 0 || cfg.OrigBootPart == "" {
		return
	}
	r := &run{cfg: cfg, log: NewLogger(console)}
	// The partition may take a moment to show up (an SD card probes
	// asynchronously); one that does not is left to stage 2.
	if !waitForDevice(ctx, cfg.OrigBootPart, 10*time.Second) {
		r.log.Warnf("%s did not appear: stage 2 restores the boot files once the old root is mounted", cfg.OrigBootPart)
		return
	}
	// Nothing loads filesystem modules this early; a failure shows in the mount.
	exec.CommandContext(ctx, "modprobe", cfg.OrigBootFSType).Run()
	r.log.Infof("putting back the original boot files on %s before anything else can fail", cfg.OrigBootPart)
	r.restoreFromPartition()
}

func waitForDevice(ctx context.Context, dev string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		if st, err := os.Stat(dev); err == nil && st.Mode()&os.ModeDevice != 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
