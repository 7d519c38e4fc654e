// Package persistence holds what both snapshot stores share: the batched
// snapshot writer with group commit. The stores themselves live in
// persistence/postgres and persistence/embedded; persistence/storetest
// checks that they behave the same.
package persistence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
)

// BatchWriter commits a slice of records in one atomic transaction. Both
// stores implement it (it is the Write method of actors.Store).
type BatchWriter interface {
	Write(ctx context.Context, recs []sluice.Record) error
}

// WriterOptions tune a Writer. The zero value gives the defaults.
type WriterOptions struct {
	// MaxBatch caps the rows of one transaction (default 4096). A single
	// Commit larger than MaxBatch is still written whole, alone.
	MaxBatch int
	// Flushers is the number of batches in flight at once (default 2).
	Flushers int
	// Timeout bounds each batch's Write (default 10s).
	Timeout time.Duration
	// Observe, if set, is called after every batch with its row count, how
	// long the Write took and its result: a hook for metrics. It runs on
	// the flusher goroutine, so it must be quick.
	Observe func(rows int, took time.Duration, err error)
}

// Writer commits records on behalf of many concurrent callers, sharing one
// transaction between all the callers that arrive while a previous write is
// in flight (group commit). There is no timer: an idle flusher writes what
// is queued at once, so a lone caller pays one transaction's latency and
// batches grow by themselves with load.
type Writer struct {
	w   BatchWriter
	opt WriterOptions

	mu     sync.Mutex
	work   *sync.Cond // signalled when the queue gains work or the writer closes
	queue  []*commit
	closed bool

	flushers sync.WaitGroup
}

// commit is one Commit or CommitBy call waiting for its records to be
// written.
type commit struct {
	ctx  context.Context // nil for CommitBy
	by   time.Time       // CommitBy's deadline
	recs []sluice.Record
	done chan error // buffered: a flusher never blocks on a caller that left
}

// late returns why c must not start: its ctx ended, or its deadline passed.
func (c *commit) late() error {
	if c.ctx != nil {
		return c.ctx.Err()
	}
	if !time.Now().Before(c.by) {
		return context.DeadlineExceeded
	}
	return nil
}

// errClosed is returned by Commit once Close has been called.
var errClosed = fmt.Errorf("snapshot writer is closed: %w", sluice.ErrUnavailable)

// NewWriter starts opt.Flushers flusher goroutines writing to w. Call Close
// to stop them.
func NewWriter(w BatchWriter, opt WriterOptions) *Writer {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 4096
	}
	if opt.Flushers <= 0 {
		opt.Flushers = 2
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	wr := &Writer{w: w, opt: opt}
	wr.work = sync.NewCond(&wr.mu)
	wr.flushers.Add(opt.Flushers)
	for range opt.Flushers {
		go wr.flush()
	}
	return wr
}

// Commit queues recs and blocks until they are durably committed, returning
// nil, or until their batch failed, returning the store's error (which every
// caller of that batch receives). The records of one call are always
// written in the same transaction, so they are atomic together.
//
// If ctx ends first, Commit returns ctx.Err() and the outcome is unknown: a
// call whose batch had not started is dropped, but one already being written
// may still be committed. Retrying is safe because stores ignore versions
// they already hold.
//
// The Writer keeps references to recs (State included) until they are
// written, possibly after Commit returned on ctx: do not modify them after
// the call. After Close, Commit returns an error wrapping
// sluice.ErrUnavailable.
func (w *Writer) Commit(ctx context.Context, recs ...sluice.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &commit{ctx: ctx, recs: recs, done: make(chan error, 1)}
	if err := w.enqueue(c); err != nil || len(recs) == 0 {
		return err
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		// Prefer the real result if it arrived at the same moment.
		select {
		case err := <-c.done:
			return err
		default:
			return ctx.Err()
		}
	}
}

// CommitBy is Commit for a caller with a deadline and nothing else that
// could make it give up: no timer is armed for it, where a context with a
// deadline arms one (and answers commit thousands of times a second). The
// records are dropped, with context.DeadlineExceeded, if their batch has
// not started by then; once it has, CommitBy returns its outcome, however
// long the write takes (WriterOptions.Timeout bounds it), so the caller
// always learns whether its records were written.
func (w *Writer) CommitBy(by time.Time, recs ...sluice.Record) error {
	c := &commit{by: by, recs: recs, done: make(chan error, 1)}
	if err := c.late(); err != nil {
		return err
	}
	if err := w.enqueue(c); err != nil || len(recs) == 0 {
		return err
	}
	return <-c.done
}

// enqueue queues c for a flusher; a commit of no records is not queued.
func (w *Writer) enqueue(c *commit) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	if len(c.recs) == 0 {
		return nil
	}
	w.queue = append(w.queue, c)
	w.work.Signal()
	return nil
}

// Close stops accepting commits, writes everything already queued, waits
// for the flushers to finish and returns. It is safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	w.work.Broadcast()
	w.mu.Unlock()
	w.flushers.Wait()
	return nil
}

// flush is one flusher: it takes whatever is queued, writes it as one
// batch, wakes its callers, and repeats until the writer is closed and the
// queue is empty.
func (w *Writer) flush() {
	defer w.flushers.Done()
	var (
		batch []*commit
		recs  []sluice.Record
	)
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.work.Wait()
		}
		if len(w.queue) == 0 { // closed and drained
			w.mu.Unlock()
			return
		}
		batch, recs = w.take(batch[:0], recs[:0])
		if len(w.queue) > 0 {
			w.work.Signal() // more than one batch queued: wake another flusher
		}
		w.mu.Unlock()

		if len(batch) > 0 {
			w.write(batch, recs)
		}
		clear(batch) // drop references to callers and their states
		clear(recs)
	}
}

// take moves queued commits into batch, in arrival order, until the next
// one would push the batch past MaxBatch. It always takes at least one
// commit, however large, so a big caller is written alone rather than split.
// Commits whose ctx ended or deadline passed are answered and dropped.
// w.mu is held.
func (w *Writer) take(batch []*commit, recs []sluice.Record) ([]*commit, []sluice.Record) {
	n := 0
	for n < len(w.queue) {
		c := w.queue[n]
		if err := c.late(); err != nil {
			c.done <- err
			n++
			continue
		}
		if len(recs) > 0 && len(recs)+len(c.recs) > w.opt.MaxBatch {
			break
		}
		batch = append(batch, c)
		recs = append(recs, c.recs...)
		n++
	}
	clear(w.queue[:n])
	w.queue = w.queue[n:]
	return batch, recs
}

// write commits one batch and hands the result to each of its callers.
func (w *Writer) write(batch []*commit, recs []sluice.Record) {
	err := w.store(recs)
	if err != nil && len(batch) > 1 && !errors.Is(err, sluice.ErrUnavailable) {
		// The store refused the data rather than failed: one caller's
		// records may be what it refuses, and they should not fail
		// everyone else's. Each caller's records are written on their own.
		for _, c := range batch {
			c.done <- w.store(c.recs)
		}
		return
	}
	for _, c := range batch {
		c.done <- err
	}
}

// store makes one store write of recs within Timeout, and reports it to
// Observe.
func (w *Writer) store(recs []sluice.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.opt.Timeout)
	defer cancel()
	start := time.Now()
	err := w.w.Write(ctx, recs)
	if w.opt.Observe != nil {
		w.opt.Observe(len(recs), time.Since(start), err)
	}
	return err
}
