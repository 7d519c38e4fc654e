package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// leanMailbox is protoactor's default mailbox (actor.UnboundedLockfree)
// with its two lock-free queues replaced by slices under one mutex that
// hold nothing while they are empty.
//
// A contract's actor lives for the contract's life, which is most of the
// node's heap, and receives a few messages an interval. The default
// mailbox keeps two queue headers and two queue nodes for each, empty or
// not: four objects a contract that every garbage collection marks, and
// the collector's mark phases are what the answers' tail latency waits for
// (docs/benchmarks.md). This one is a single object while it is empty;
// a message costs one small allocation, as a queue node did.
//
// The scheduling is the default mailbox's, line for line: a run takes the
// system messages first, stops at a suspension, hands over after the
// dispatcher's throughput, and a message posted while a run ends is never
// left behind (the counters are read after the status is set idle).
type leanMailbox struct {
	mu     sync.Mutex
	user   msgQueue
	system msgQueue

	schedulerStatus atomic.Int32 // mailboxIdle or mailboxRunning
	userMessages    atomic.Int32
	sysMessages     atomic.Int32
	suspended       atomic.Bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
}

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

var _ actor.Mailbox = (*leanMailbox)(nil)

// newLeanMailbox is an actor.MailboxProducer.
func newLeanMailbox() actor.Mailbox { return &leanMailbox{} }

// msgQueue is a FIFO that lets go of its array once it is empty.
type msgQueue struct {
	items []any
	head  int
}

func (q *msgQueue) push(m any) { q.items = append(q.items, m) }

func (q *msgQueue) pop() any {
	if q.head == len(q.items) {
		return nil
	}
	m := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = nil, 0
	case q.head >= 64 && 2*q.head >= len(q.items):
		// A backlog that never drains: move what is left to the front,
		// so the array stays within twice the backlog instead of
		// keeping every slot it ever used.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return m
}

func (m *leanMailbox) PostUserMessage(message any) {
	// Batches are delivered item by item, then whole, as the default
	// mailbox delivers them.
	if batch, ok := message.(actor.MessageBatch); ok {
		for _, msg := range batch.GetMessages() {
			m.PostUserMessage(msg)
		}
	}
	if env, ok := message.(*actor.MessageEnvelope); ok {
		if batch, ok := env.Message.(actor.MessageBatch); ok {
			for _, msg := range batch.GetMessages() {
				m.PostUserMessage(msg)
			}
		}
	}
	m.mu.Lock()
	m.user.push(message)
	m.mu.Unlock()
	m.userMessages.Add(1)
	m.schedule()
}

func (m *leanMailbox) PostSystemMessage(message any) {
	m.mu.Lock()
	m.system.push(message)
	m.mu.Unlock()
	m.sysMessages.Add(1)
	m.schedule()
}

func (m *leanMailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker = invoker
	m.dispatcher = dispatcher
}

func (m *leanMailbox) Start() {}

func (m *leanMailbox) UserMessageCount() int { return int(m.userMessages.Load()) }

func (m *leanMailbox) schedule() {
	if m.schedulerStatus.CompareAndSwap(mailboxIdle, mailboxRunning) {
		m.dispatcher.Schedule(m.processMessages)
	}
}

func (m *leanMailbox) processMessages() {
	for {
		m.run()
		m.schedulerStatus.Store(mailboxIdle)
		sys, user := m.sysMessages.Load(), m.userMessages.Load()
		if sys == 0 && (m.suspended.Load() || user == 0) {
			return
		}
		// Posted while the run ended: run again, unless a post
		// already scheduled a run of its own.
		if !m.schedulerStatus.CompareAndSwap(mailboxIdle, mailboxRunning) {
			return
		}
	}
}

func (m *leanMailbox) pop(q *msgQueue) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return q.pop()
}

func (m *leanMailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	i, t := 0, m.dispatcher.Throughput()
	for {
		if i > t {
			i = 0
			runtime.Gosched()
		}
		i++
		if msg = m.pop(&m.system); msg != nil {
			m.sysMessages.Add(-1)
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return
		}
		if msg = m.pop(&m.user); msg == nil {
			return
		}
		m.userMessages.Add(-1)
		m.invoker.InvokeUserMessage(msg)
	}
}
