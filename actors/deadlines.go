package actors

import (
	"container/heap"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// deadlines holds the deadline of every live contract in one heap, under
// one runtime timer armed for the earliest.
//
// A runtime timer for each contract made the runtime's own timer heaps a
// million entries deep, and the runtime scans a whole heap whenever a
// timer on it that was changed comes due: pgx changes a 15 ms timer around
// every write to PostgreSQL (pgconn's slowWriteTimer), so the node scanned
// every contract's timer about sixty times a second, 7-10 % of its CPU in
// the single-answer benchmark (docs/benchmarks.md). Here the runtime sees
// one timer; a contract keeps a deadlineEntry inside its actor, where the
// timer, its function and closure were three objects for the collector.
type deadlines struct {
	fire func(*actor.PID) // sends deadlineFired; called without mu held

	mu      sync.Mutex
	heap    deadlineHeap
	timer   *time.Timer // armed for timerAt; nil until first needed
	timerAt int64       // UnixNano the timer fires at; 0 while it is not armed
	stopped bool
}

// deadlineEntry is one contract's place in the heap: the contract's actor
// owns it and changes it only through deadlines' methods.
type deadlineEntry struct {
	at  int64      // UnixNano the deadline falls at
	pos int32      // position in the heap plus one; 0 while not queued
	pid *actor.PID // the contract's actor
}

func newDeadlines(fire func(*actor.PID)) *deadlines { return &deadlines{fire: fire} }

// set queues d to fire at at, replacing the time it was queued for.
func (q *deadlines) set(d *deadlineEntry, pid *actor.PID, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	d.at, d.pid = at.UnixNano(), pid
	if d.pos > 0 {
		heap.Fix(&q.heap, int(d.pos-1))
	} else {
		heap.Push(&q.heap, d)
	}
	q.arm()
}

// remove takes d out of the heap, if it is there. The timer may then fire
// early, finding nothing due.
func (q *deadlines) remove(d *deadlineEntry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if d.pos > 0 {
		heap.Remove(&q.heap, int(d.pos-1))
	}
	d.pid = nil
}

// stop disarms the timer and forgets every deadline.
func (q *deadlines) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	if q.timer != nil {
		q.timer.Stop()
	}
	for _, d := range q.heap {
		d.pos, d.pid = 0, nil
	}
	q.heap = nil
}

// len is the number of deadlines queued.
func (q *deadlines) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.heap)
}

// arm makes sure the timer fires by the earliest deadline. A timer armed
// for an earlier time is left alone: it finds nothing due and arms again.
// q.mu is held.
func (q *deadlines) arm() {
	if len(q.heap) == 0 || q.stopped {
		return
	}
	first := q.heap[0].at
	if q.timerAt != 0 && q.timerAt <= first {
		return
	}
	q.timerAt = first
	wait := time.Duration(first - time.Now().UnixNano())
	if q.timer == nil {
		q.timer = time.AfterFunc(wait, q.run)
		return
	}
	q.timer.Reset(wait)
}

// deadlineBurst is how many due deadlines run takes off the heap at a
// time: a million contracts can fall due at one instant (after a restart
// their due times all move to start-up plus one interval), and contracts
// setting their next deadline should not wait for all of them.
const deadlineBurst = 4096

// run is the timer's function: it takes the deadlines that have come off
// the heap, a burst at a time, tells their contracts, and arms the timer
// for the next.
func (q *deadlines) run() {
	q.mu.Lock()
	q.timerAt = 0
	q.mu.Unlock()
	for {
		q.mu.Lock()
		now := time.Now().UnixNano()
		due := make([]*actor.PID, 0, min(len(q.heap), deadlineBurst))
		for len(q.heap) > 0 && q.heap[0].at <= now && len(due) < deadlineBurst {
			d := heap.Pop(&q.heap).(*deadlineEntry)
			due = append(due, d.pid)
			d.pid = nil
		}
		more := len(q.heap) > 0 && q.heap[0].at <= now
		if !more {
			q.arm()
		}
		q.mu.Unlock()
		for _, pid := range due {
			q.fire(pid)
		}
		if !more {
			return
		}
	}
}

// deadlineHeap is a min-heap of entries by time (container/heap).
type deadlineHeap []*deadlineEntry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = int32(i+1), int32(j+1)
}

func (h *deadlineHeap) Push(x any) {
	d := x.(*deadlineEntry)
	d.pos = int32(len(*h) + 1)
	*h = append(*h, d)
}

func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.pos = 0
	return d
}
