package blobstore

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Uploads stream through one buffer of chunkSize bytes from chunkPool:
// that is the memory a Stage (or Seal) holds whatever the file's size.
const chunkSize = 256 << 10

var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// copyLimit copies r to w through one pooled chunk and returns the number
// of bytes copied. A limit of zero or more is the most bytes accepted (a
// negative one means none): more than limit bytes ends the copy, after
// reading at most limit+1 of them, with an error wrapping ErrTooLarge.
// ctx is checked before each read of r.
func copyLimit(ctx context.Context, w io.Writer, r io.Reader, limit int64) (int64, error) {
	buf := chunkPool.Get().(*[chunkSize]byte)
	defer chunkPool.Put(buf)
	var n int64
	for {
		want := int64(chunkSize)
		if limit >= 0 && limit-n < want-1 {
			want = limit - n + 1
		}
		k, rerr := fill(ctx, r, buf[:want])
		n += int64(k)
		if limit >= 0 && n > limit {
			return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, err
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// fill reads from r into b until b is full or r fails, checking ctx before
// each read. It returns io.EOF, not io.ErrUnexpectedEOF, when r ends first.
func fill(ctx context.Context, r io.Reader, b []byte) (int, error) {
	k := 0
	for k < len(b) {
		if err := ctx.Err(); err != nil {
			return k, err
		}
		m, err := r.Read(b[k:])
		k += m
		if err != nil {
			return k, err
		}
	}
	return k, nil
}
