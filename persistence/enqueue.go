package persistence

import (
	"context"

	"github.com/sluicehq/sluice"
)

// Enqueue queues records without waiting for their commit. It is for
// changes that may be lost in a crash because they are derived again at
// start-up; a failure is reported only through WriterOptions.Observe.
// After Close it drops the records.
func (w *Writer) Enqueue(recs ...sluice.Record) {
	if len(recs) == 0 {
		return
	}
	c := &commit{ctx: context.Background(), recs: recs, done: make(chan error, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.queue = append(w.queue, c)
	w.work.Signal()
}
