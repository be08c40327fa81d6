// Package iox holds the two small io adapters both the device and the fleet
// side need: a reader that stops when its context ends, and a writer that
// keeps only the start of what it is given.
package iox

import (
	"bytes"
	"context"
	"io"
)

// ContextReader returns a reader that fails with ctx's error once ctx has
// ended, so a long copy stops between two reads.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Head is a writer that keeps the first Max bytes written to it in Buf and
// accepts, but drops, the rest: for error output quoted in a message, or
// the first sector of a stream being hashed.
type Head struct {
	Buf bytes.Buffer
	Max int
}

func (h *Head) Write(p []byte) (int, error) {
	if room := h.Max - h.Buf.Len(); room > 0 {
		h.Buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
