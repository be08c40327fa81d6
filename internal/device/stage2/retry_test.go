package stage2

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/s2config"
)

func TestRetryAfterThePointOfNoReturn(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failures  int // the step fails this many times, then works
		wantCalls int
		wantErr   bool
		wantLog   string
	}{
		{"works at once", 0, 1, false, ""},
		{"a hiccup", 1, 2, false, "flashing succeeded at attempt 2 of 3"},
		{"twice", 2, 3, false, "flashing failed (attempt 2 of 3): EIO"},
		{"a dead disk ends", 10, 3, true, "flashing failed (attempt 2 of 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &run{cfg: s2config.Config{Watchdog: 30}, log: NewLogger(&out), retryWait: time.Millisecond}
			dev := &refusingWatchdog{max: 30, current: 30}
			r.guardWith(dev)
			defer r.releaseWatchdog()
			calls := 0
			var progressAt []time.Time
			err := r.retry(context.Background(), "flashing", func() error {
				calls++
				progressAt = append(progressAt, r.guard.feeder.LastProgress())
				if calls <= tc.failures {
					return errors.New("EIO")
				}
				return nil
			})
			if calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Fatalf("calls %d err %v, want %d calls, error %v", calls, err, tc.wantCalls, tc.wantErr)
			}
			if tc.wantErr && !strings.Contains(err.Error(), "flashing failed 3 times; the last time: EIO") {
				t.Errorf("error %q", err)
			}
			if !strings.Contains(out.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, out.String())
			}
			// Each attempt counted as progress for the watchdog.
			for i := 1; i < len(progressAt); i++ {
				if !progressAt[i].After(progressAt[i-1]) {
					t.Errorf("attempt %d did not mark progress", i+1)
				}
			}
		})
	}
}
