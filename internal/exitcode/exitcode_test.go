package exitcode

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

type coded int

func (c coded) Error() string { return fmt.Sprintf("stopped, exit %d", int(c)) }
func (c coded) ExitCode() int { return int(c) }

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, OK},
		{"a failed job", errors.New("image check failed"), Failed},
		{"bad usage", usage.Errorf("--reboot -1"), Usage},
		{"bad usage, wrapped", fmt.Errorf("migration failed: %w", usage.Errorf("IMAGE_NAME is not set")), Usage},
		{"a code asked for", coded(3), 3},
		{"a code asked for, wrapped", fmt.Errorf("stage 2 did not complete: %w", coded(4)), 4},
		{"a code of 0 asked for", coded(0), OK},
		{"usage wins over a code", errors.Join(coded(3), usage.Errorf("bad")), Usage},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}
