package balena

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/backoff"
)

// RetryPolicy says how transient failures (ErrTransient) are retried:
// up to Attempts tries in all, waiting an exponentially growing, jittered
// delay that starts near Base and never exceeds Max. A Retry-After from
// balena is waited for in full, however it compares with Max: asking again
// sooner would only be refused again. A Retry-After longer than
// MaxRetryAfter is not waited for inside the call: the call ends with the
// error (its RetryAfter set) so the caller can put the work aside.
type RetryPolicy struct {
	Attempts      int
	Base          time.Duration
	Max           time.Duration
	MaxRetryAfter time.Duration
}

// DefaultRetry: 5 tries, 500 ms doubling up to 30 s between them; a
// Retry-After of up to 2 minutes is waited for.
var DefaultRetry = RetryPolicy{Attempts: 5, Base: 500 * time.Millisecond, Max: 30 * time.Second,
	MaxRetryAfter: 2 * time.Minute}

// WithDefaults fills unset fields from DefaultRetry.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = DefaultRetry.Attempts
	}
	if p.Base <= 0 {
		p.Base = DefaultRetry.Base
	}
	if p.Max <= 0 {
		p.Max = DefaultRetry.Max
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultRetry.MaxRetryAfter
	}
	return p
}

// Delay is the wait before try number next (1 = the first retry), given
// the Retry-After balena asked for (0: none): the longer of the two. The
// exponential part is jittered between half and all of its value.
func (p RetryPolicy) Delay(next int, retryAfter time.Duration) time.Duration {
	p = p.WithDefaults()
	d := backoff.Doubling(p.Base, p.Max, next)
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// Do calls fn until it succeeds, fails with an error that is not
// ErrTransient, the tries are used up, balena asks for a wait beyond
// MaxRetryAfter, or ctx ends. It returns fn's last error; when ctx ended
// while waiting, that error joined with ctx's.
func (p RetryPolicy) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	p = p.WithDefaults()
	var err error
	for try := 1; ; try++ {
		err = fn(ctx)
		if err == nil || !errors.Is(err, ErrTransient) || try >= p.Attempts {
			return err
		}
		var be *Error
		var after time.Duration
		if errors.As(err, &be) {
			after = be.RetryAfter
		}
		if after > p.MaxRetryAfter {
			return err
		}
		t := time.NewTimer(p.Delay(try, after))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}
