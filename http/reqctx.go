package http

import (
	"context"
	"sync"
	"time"
)

// requestCtx is the context bounded gives a request: the request's own,
// with a deadline that arms no timer until something waits on Done.
// context.WithDeadline arms one at once and stops it at the end, two
// changes to the runtime's timer heap for every request; on a node with a
// deadline timer for each of a million contracts that heap is deep, and
// the answer path never waits on Done (it looks at Err, see
// actors.Engine.AnswersReusable). Err reports the deadline as
// WithDeadline's would; the first Done (a derived context, a select, a
// database call) arms the real deadline context, which then answers for
// all four methods.
type requestCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	armed  context.Context // nil until Done is first called
	cancel context.CancelFunc
}

func newRequestCtx(parent context.Context, deadline time.Time) *requestCtx {
	return &requestCtx{parent: parent, deadline: deadline}
}

func (c *requestCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *requestCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed == nil {
		c.armed, c.cancel = context.WithDeadline(c.parent, c.deadline)
	}
	return c.armed.Done()
}

func (c *requestCtx) Err() error {
	if armed := c.armedCtx(); armed != nil {
		return armed.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value looks in the armed context once there is one: contexts derived
// from this one then find its cancellation (as they would a WithDeadline
// context's) and need no goroutine to follow it.
func (c *requestCtx) Value(key any) any {
	if armed := c.armedCtx(); armed != nil {
		return armed.Value(key)
	}
	return c.parent.Value(key)
}

func (c *requestCtx) String() string { return "sluice request context" }

func (c *requestCtx) armedCtx() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

// release ends the armed context, if any: the request is over.
func (c *requestCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}
