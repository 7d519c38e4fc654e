// Package ctxio stops long reads when their context ends.
package ctxio

import (
	"context"
	"io"
)

// Reader reads from r until ctx ends; then every read fails with ctx's
// error. It checks before each read, so a read in progress finishes.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
