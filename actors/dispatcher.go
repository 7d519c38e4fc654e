package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Dispatcher defaults: protoactor's own throughput (messages a mailbox run
// takes before it yields), how long a spare goroutine waits for another
// run, and how many may wait at once.
const (
	dispatchThroughput = 300
	dispatchIdle       = time.Second
	dispatchMaxIdle    = 1024
)

// reusingDispatcher runs mailboxes as protoactor's default dispatcher does,
// each run on a goroutine of its own and never waiting for one, but it
// hands a run to a goroutine that has finished one and is waiting for
// more, when there is such a goroutine, instead of starting a new one.
//
// A new goroutine starts with a small stack, and a contract's or token's
// run outgrows it at once (SHA-256 in a proof's verification or a token's
// check), so with the default dispatcher every run paid for growing and
// copying a stack: 5 % of the node's CPU under single-answer load
// (docs/benchmarks.md). A reused goroutine keeps its grown stack.
//
// A spare goroutine waits up to dispatchIdle for a run, and at most
// dispatchMaxIdle wait at once, so a burst leaves nothing behind for long.
// After stop, spare goroutines leave and every run gets a new goroutine.
type reusingDispatcher struct {
	throughput int
	idle       time.Duration
	maxIdle    int32

	work     chan func() // unbuffered: a send succeeds only to a waiting goroutine
	waiting  atomic.Int32
	stopped  chan struct{}
	stopOnce sync.Once
}

var _ actor.Dispatcher = (*reusingDispatcher)(nil)

func newReusingDispatcher(throughput int, idle time.Duration, maxIdle int32) *reusingDispatcher {
	return &reusingDispatcher{throughput: throughput, idle: idle, maxIdle: maxIdle,
		work: make(chan func()), stopped: make(chan struct{})}
}

// Schedule runs fn on a waiting goroutine, or on a new one if none waits.
func (d *reusingDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		go d.serve(fn)
	}
}

// Throughput is the messages a mailbox handles per run.
func (d *reusingDispatcher) Throughput() int { return d.throughput }

// stop makes the waiting goroutines leave; it may be called more than once.
func (d *reusingDispatcher) stop() {
	d.stopOnce.Do(func() { close(d.stopped) })
}

// serve runs fn, then waits for further runs until it has waited idle for
// nothing, enough others wait already, or the dispatcher stops.
func (d *reusingDispatcher) serve(fn func()) {
	fn()
	var t *time.Timer
	for {
		if d.waiting.Add(1) > d.maxIdle {
			d.waiting.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(d.idle)
			defer t.Stop()
		} else {
			t.Reset(d.idle)
		}
		select {
		case fn = <-d.work:
			d.waiting.Add(-1)
			fn()
		case <-t.C:
			d.waiting.Add(-1)
			return
		case <-d.stopped:
			d.waiting.Add(-1)
			return
		}
	}
}
