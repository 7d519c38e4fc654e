package actors

import (
	"slices"
	"sync"
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
// The goroutine that became idle last gets the next run, so under a steady
// load the same few goroutines take every run and the others, idle for
// dispatchIdle, leave: what stays is about the runs at once, not the runs
// a second. At most dispatchMaxIdle wait at once. After stop, waiting
// goroutines leave and every run gets a new goroutine.
//
// The goroutines and their channels belong to the testing/synctest bubble
// they were started in, if any: an Engine must be started and used within
// one bubble, or outside any.
type reusingDispatcher struct {
	throughput int
	idle       time.Duration
	maxIdle    int

	mu      sync.Mutex
	waiting []*spare // a stack: the last is the latest to become idle
	stopped bool
	quit    chan struct{} // closed by stop
}

// spare is a goroutine waiting for a run.
type spare struct {
	run    chan func() // buffered: Schedule never waits on it
	popped bool        // taken off the stack by Schedule: a run is coming
}

var _ actor.Dispatcher = (*reusingDispatcher)(nil)

func newReusingDispatcher(throughput int, idle time.Duration, maxIdle int) *reusingDispatcher {
	return &reusingDispatcher{throughput: throughput, idle: idle, maxIdle: maxIdle, quit: make(chan struct{})}
}

// Schedule runs fn on the latest goroutine to become idle, or on a new one
// if none waits.
func (d *reusingDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	if n := len(d.waiting); n > 0 {
		s := d.waiting[n-1]
		d.waiting[n-1] = nil
		d.waiting = d.waiting[:n-1]
		s.popped = true
		d.mu.Unlock()
		s.run <- fn
		return
	}
	d.mu.Unlock()
	go d.serve(fn)
}

// Throughput is the messages a mailbox handles per run.
func (d *reusingDispatcher) Throughput() int { return d.throughput }

// waitingNow is how many goroutines wait for a run.
func (d *reusingDispatcher) waitingNow() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiting)
}

// stop makes the waiting goroutines leave; it may be called more than once.
func (d *reusingDispatcher) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		d.stopped = true
		close(d.quit)
	}
}

// serve runs fn, then waits for further runs until it has waited idle for
// nothing, enough others wait already, or the dispatcher stops.
func (d *reusingDispatcher) serve(fn func()) {
	s := &spare{run: make(chan func(), 1)}
	var t *time.Timer
	for {
		fn()
		d.mu.Lock()
		if d.stopped || len(d.waiting) >= d.maxIdle {
			d.mu.Unlock()
			return
		}
		s.popped = false
		d.waiting = append(d.waiting, s)
		d.mu.Unlock()
		if t == nil {
			t = time.NewTimer(d.idle)
			defer t.Stop()
		} else {
			t.Reset(d.idle)
		}
		select {
		case fn = <-s.run:
			continue
		case <-t.C:
		case <-d.quit:
		}
		// Leave, unless Schedule took this goroutine off the stack in the
		// meantime: its run is then on the way and must be run.
		d.mu.Lock()
		if s.popped {
			d.mu.Unlock()
			fn = <-s.run
			continue
		}
		if i := slices.Index(d.waiting, s); i >= 0 {
			d.waiting = slices.Delete(d.waiting, i, i+1)
		}
		d.mu.Unlock()
		return
	}
}
