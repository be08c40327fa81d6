package usage

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestMarks(t *testing.T) {
	cause := fs.ErrNotExist
	for _, tc := range []struct {
		name string
		err  error
		want bool
		text string
	}{
		{"nil", nil, false, ""},
		{"plain", errors.New("disk on fire"), false, "disk on fire"},
		{"errorf", Errorf("setting %s: %w", "X", cause), true, "setting X: file does not exist"},
		{"wrap", Wrap(cause), true, "file does not exist"},
		{"wrapped again", fmt.Errorf("ctx: %w", Wrap(cause)), true, "ctx: file does not exist"},
		{"wrap nil", Wrap(nil), false, ""},
	} {
		if got := Is(tc.err); got != tc.want {
			t.Errorf("%s: Is = %v, want %v", tc.name, got, tc.want)
		}
		if tc.err != nil && tc.err.Error() != tc.text {
			t.Errorf("%s: text %q, want %q", tc.name, tc.err.Error(), tc.text)
		}
	}
	if !errors.Is(Errorf("x: %w", cause), fs.ErrNotExist) {
		t.Error("the cause is lost")
	}
	if w := Wrap(Errorf("once")); w.Error() != "once" {
		t.Errorf("double wrap changed the text: %q", w)
	}
}
