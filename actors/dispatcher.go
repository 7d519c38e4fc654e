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
// Idle goroutines are sent away by one timer for the whole dispatcher, not
// by a timer each: a run would otherwise reset its goroutine's timer, and
// with a timer per live contract on the runtime's timer heaps (their
// deadlines) every reset cost a walk of a deep heap, twice an answer.
//
// The goroutines, their channels and the timer belong to the
// testing/synctest bubble they were started in, if any: an Engine must be
// started and used within one bubble, or outside any.
type reusingDispatcher struct {
	throughput int
	idle       time.Duration
	maxIdle    int

	mu      sync.Mutex
	waiting []*spare    // a stack: the last is the latest to become idle
	reaper  *time.Timer // armed while goroutines wait; nil until first armed
	armed   bool        // the reaper will fire
	stopped bool
}

// spare is a goroutine waiting for a run. A nil run sends it away.
type spare struct {
	run   chan func() // buffered: neither Schedule nor reap waits on it
	since time.Time   // when it became idle
}

var _ actor.Dispatcher = (*reusingDispatcher)(nil)

func newReusingDispatcher(throughput int, idle time.Duration, maxIdle int) *reusingDispatcher {
	return &reusingDispatcher{throughput: throughput, idle: idle, maxIdle: maxIdle}
}

// Schedule runs fn on the latest goroutine to become idle, or on a new one
// if none waits.
func (d *reusingDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	if n := len(d.waiting); n > 0 {
		s := d.waiting[n-1]
		d.waiting[n-1] = nil
		d.waiting = d.waiting[:n-1]
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
	d.stopped = true
	if d.reaper != nil {
		d.reaper.Stop()
	}
	d.armed = false
	d.sendAway(len(d.waiting))
}

// sendAway tells the n goroutines at the bottom of the stack, the longest
// idle, to leave. d.mu is held.
func (d *reusingDispatcher) sendAway(n int) {
	for _, s := range d.waiting[:n] {
		s.run <- nil
	}
	clear(d.waiting[:n])
	d.waiting = slices.Delete(d.waiting, 0, n)
}

// serve runs fn, then waits for further runs until it is sent away:
// because it waited idle for d.idle, because enough others wait already,
// or because the dispatcher stopped.
func (d *reusingDispatcher) serve(fn func()) {
	s := &spare{run: make(chan func(), 1)}
	for fn != nil {
		fn()
		d.mu.Lock()
		if d.stopped || len(d.waiting) >= d.maxIdle {
			d.mu.Unlock()
			return
		}
		s.since = time.Now()
		d.waiting = append(d.waiting, s)
		d.arm(d.idle)
		d.mu.Unlock()
		fn = <-s.run
	}
}

// arm makes sure the reaper fires within after. d.mu is held.
func (d *reusingDispatcher) arm(after time.Duration) {
	if d.armed {
		return
	}
	d.armed = true
	if d.reaper == nil {
		d.reaper = time.AfterFunc(after, d.reap)
		return
	}
	d.reaper.Reset(after)
}

// reap sends away the goroutines idle for d.idle or longer, and arms itself
// again for the next one to reach that age. The stack is ordered by how
// long its goroutines have waited, the longest at the bottom.
func (d *reusingDispatcher) reap() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.armed || d.stopped {
		return
	}
	d.armed = false
	now := time.Now()
	n := 0
	for n < len(d.waiting) && now.Sub(d.waiting[n].since) >= d.idle {
		n++
	}
	d.sendAway(n)
	if len(d.waiting) > 0 {
		d.arm(d.waiting[0].since.Add(d.idle).Sub(now))
	}
}
