package blobstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// A Put streams through at most chunkCount buffers of chunkSize bytes,
// taken from chunkPool as the file turns out to need them: a file smaller
// than a chunk holds one. That is the memory a Put holds whatever the
// file's size.
//
// SHA-256 is the slowest step of a Put by far (on CPUs without the SHA
// extensions it runs at a third to a half of the speed of a write to the
// page cache), so it gets a goroutine of its own and the chunks are handed
// to it in order, while the caller's goroutine reads the next chunk and
// writes the current one. Several chunks in flight let reading run ahead
// when the source is bursty, as a network is, so that hashing never waits.
// A chunk is small enough to still be in the core's cache when it is
// written out after being read in.
const (
	chunkSize  = 256 << 10
	chunkCount = 8
)

var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// chunk is a filled buffer on its way to the hasher.
type chunk struct {
	buf *[chunkSize]byte
	n   int
}

// copyAndHash copies r to w and returns the CID of the bytes copied and
// their number. A limit of zero or more is the most bytes accepted: when r
// yields more, copyAndHash stops after reading limit+1 bytes, writes none
// of the chunk that went over, and returns an error wrapping ErrTooLarge.
// A negative limit means none. ctx is checked before each read of r.
//
// Each chunk is filled from r, queued for the hasher and written to w by
// the caller's goroutine while a second goroutine hashes the chunks
// before it. A buffer goes back to the caller only once the hasher is done
// with it, and w.Write only reads it, so the two never conflict. Whatever
// the outcome, the hasher has stopped and every buffer is back in the pool
// when copyAndHash returns.
func copyAndHash(ctx context.Context, w io.Writer, r io.Reader, limit int64) (CID, int64, error) {
	var (
		bufs  [chunkCount]*[chunkSize]byte // taken from chunkPool so far
		taken int
		full  = make(chan chunk, chunkCount)
		free  = make(chan *[chunkSize]byte, chunkCount)
		sum   = make(chan CID, 1)
		abort atomic.Bool // set on failure: skip hashing what is queued
	)
	go func() {
		h := sha256.New()
		for c := range full {
			if !abort.Load() {
				h.Write(c.buf[:c.n])
			}
			free <- c.buf
		}
		var c CID
		h.Sum(c[:0])
		sum <- c
	}()
	defer func() {
		for _, b := range bufs[:taken] {
			chunkPool.Put(b)
		}
	}()

	var n int64
	err := func() error {
		for {
			// A buffer the hasher is done with, or a new one while fewer
			// than chunkCount are in use.
			var buf *[chunkSize]byte
			select {
			case buf = <-free:
			default:
				if taken < chunkCount {
					buf = chunkPool.Get().(*[chunkSize]byte)
					bufs[taken] = buf
					taken++
				} else {
					buf = <-free
				}
			}
			want := int64(chunkSize)
			if limit >= 0 && limit-n < want-1 {
				// Read at most one byte beyond the limit: enough to know.
				// (Written so that a limit of math.MaxInt64 cannot
				// overflow.)
				want = limit - n + 1
			}
			k, rerr := fill(ctx, r, buf[:want])
			n += int64(k)
			if limit >= 0 && n > limit {
				return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
			}
			if k > 0 {
				full <- chunk{buf: buf, n: k}
				if _, err := w.Write(buf[:k]); err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	}()
	if err != nil {
		abort.Store(true)
	}
	close(full)
	c := <-sum
	if err != nil {
		return CID{}, n, err
	}
	return c, n, nil
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
