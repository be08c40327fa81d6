package backoff

import (
	"testing"
	"time"
)

func TestDoubling(t *testing.T) {
	for _, tc := range []struct {
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{600 * time.Second, 24 * time.Hour, 1, 600 * time.Second},
		{600 * time.Second, 24 * time.Hour, 2, 1200 * time.Second},
		{600 * time.Second, 24 * time.Hour, 3, 2400 * time.Second},
		{600 * time.Second, 24 * time.Hour, 10, 24 * time.Hour},
		{500 * time.Millisecond, 30 * time.Second, 4, 4 * time.Second},
		{time.Second, time.Hour, 1000, time.Hour}, // no overflow
		{time.Second, time.Hour, 0, time.Second},
	} {
		if got := Doubling(tc.base, tc.max, tc.n); got != tc.want {
			t.Errorf("Doubling(%v, %v, %d) = %v, want %v", tc.base, tc.max, tc.n, got, tc.want)
		}
	}
}
