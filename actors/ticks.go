package actors

import (
	"sync"
	"sync/atomic"
	"time"
)

// sharedTicks is a ticker shared by every waiter that looks at something
// once a period while it waits (whether an actor is gone, in Ask and in
// Answers): wait returns a channel that closes at the next tick. One
// timer serves all the waiters of a period, where a ticker each made and
// stopped a timer on every request, and it runs only while someone waits.
//
// A waiter that arrives late in a period is woken less than a period
// after it began to wait; the checks it makes then are as correct early as
// on time.
//
// Its timer and channels belong to the testing/synctest bubble in which
// wait was first called in a period: like the engine that owns it, it
// must be used within one bubble, or outside any.
type sharedTicks struct {
	every time.Duration

	mu   sync.Mutex                    // held to start a period
	next atomic.Pointer[chan struct{}] // closed at the next tick; nil while no one waits
}

func newSharedTicks(every time.Duration) *sharedTicks { return &sharedTicks{every: every} }

// wait returns a channel that is closed at the next tick, at most every
// from now. While a period runs it only loads a pointer: every answer
// calls it.
func (t *sharedTicks) wait() <-chan struct{} {
	if c := t.next.Load(); c != nil {
		return *c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.next.Load(); c != nil {
		return *c
	}
	c := make(chan struct{})
	t.next.Store(&c)
	time.AfterFunc(t.every, t.tick)
	return c
}

func (t *sharedTicks) tick() {
	t.mu.Lock()
	c := t.next.Swap(nil)
	t.mu.Unlock()
	close(*c)
}
