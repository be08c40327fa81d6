package iox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestContextReaderStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := ContextReader(ctx, strings.NewReader("abcdef"))
	buf := make([]byte, 3)
	if n, err := r.Read(buf); n != 3 || err != nil {
		t.Fatalf("before cancel: %d, %v", n, err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %d, %v", n, err)
	}
}

func TestHeadKeepsTheStart(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		max    int
		want   string
	}{
		{[]string{"abc", "def"}, 4, "abcd"},
		{[]string{"ab"}, 4, "ab"},
		{[]string{"abcd", "e"}, 4, "abcd"},
		{[]string{"x"}, 0, ""},
	} {
		h := &Head{Max: tc.max}
		total := 0
		for _, w := range tc.writes {
			n, err := io.Copy(h, bytes.NewReader([]byte(w)))
			if err != nil || int(n) != len(w) {
				t.Fatalf("%q: wrote %d, %v", w, n, err)
			}
			total += int(n)
		}
		if got := h.Buf.String(); got != tc.want {
			t.Errorf("%q max %d: kept %q, want %q", tc.writes, tc.max, got, tc.want)
		}
	}
}
