package stage2

import (
	"context"
	"fmt"
	"time"
)

// After the point of no return a failed step is tried this many times in
// all, waiting defaultRetryWait, then twice that, between attempts: a disk
// that hiccups (a bus reset, a card that needs a moment) gets another
// chance while the image is still in RAM.
const (
	retryAttempts    = 3
	defaultRetryWait = 2 * time.Second
)

// retry runs step until it succeeds or has failed retryAttempts times. Each
// attempt counts as progress, so the watchdog is fed while retries move;
// their number is bounded, so a dead disk still ends in a reboot.
func (r *run) retry(ctx context.Context, what string, step func() error) error {
	wait := r.retryWait
	if wait == 0 {
		wait = defaultRetryWait
	}
	for attempt := 1; ; attempt++ {
		r.progress()
		err := step()
		if err == nil {
			if attempt > 1 {
				r.log.Infof("%s succeeded at attempt %d of %d", what, attempt, retryAttempts)
			}
			return nil
		}
		if attempt == retryAttempts || ctx.Err() != nil {
			return fmt.Errorf("%s failed %d times; the last time: %w", what, attempt, err)
		}
		r.log.Warnf("%s failed (attempt %d of %d): %v; trying again in %v", what, attempt, retryAttempts, err, wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
}
