// Package backoff computes the doubling waits the fleet side leaves between
// retries: of balena API calls, and of devices that did not answer.
package backoff

import "time"

// Doubling is the wait before retry n (1 = the first): base·2^(n-1), never
// more than max (and never overflowing on the way there).
func Doubling(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
