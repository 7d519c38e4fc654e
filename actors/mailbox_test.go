package actors

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// recorder is a MessageInvoker that notes what it is given, in order.
type recorder struct {
	mu     sync.Mutex
	user   []any
	system []any
	seen   []string // "s:..." or "u:..." in invocation order
	onUser func(any)
}

func (r *recorder) InvokeSystemMessage(m any) {
	r.mu.Lock()
	r.system = append(r.system, m)
	r.seen = append(r.seen, fmt.Sprint("s:", m))
	r.mu.Unlock()
}

func (r *recorder) InvokeUserMessage(m any) {
	r.mu.Lock()
	r.user = append(r.user, m)
	r.seen = append(r.seen, fmt.Sprint("u:", m))
	f := r.onUser
	r.mu.Unlock()
	if f != nil {
		f(m)
	}
}

func (r *recorder) EscalateFailure(reason, message any) {}

func newTestMailbox(inv actor.MessageInvoker) (*leanMailbox, *reusingDispatcher) {
	d := newReusingDispatcher(3, time.Second, 8)
	m := newLeanMailbox().(*leanMailbox)
	m.RegisterHandlers(inv, d)
	m.Start()
	return m, d
}

// Every message posted from many goroutines at once is delivered exactly
// once, and each goroutine's messages in the order it posted them.
func TestLeanMailboxDeliversEveryMessageInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		m, d := newTestMailbox(r)
		defer d.stop()
		const senders, each = 8, 500
		var wg sync.WaitGroup
		for s := range senders {
			wg.Go(func() {
				for i := range each {
					m.PostUserMessage([2]int{s, i})
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		if len(r.user) != senders*each || m.UserMessageCount() != 0 {
			t.Fatalf("delivered %d of %d, %d still counted", len(r.user), senders*each, m.UserMessageCount())
		}
		next := make([]int, senders)
		for _, msg := range r.user {
			p := msg.([2]int)
			if p[1] != next[p[0]] {
				t.Fatalf("sender %d: got message %d, want %d", p[0], p[1], next[p[0]])
			}
			next[p[0]]++
		}
		if m.user.items != nil {
			t.Fatalf("an empty mailbox holds an array of %d", cap(m.user.items))
		}
	})
}

// System messages go before waiting user messages; a suspended mailbox
// delivers system messages only, and resuming delivers the rest.
func TestLeanMailboxSystemFirstAndSuspension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		r := &recorder{}
		r.onUser = func(m any) {
			if m == "block" {
				<-release
			}
		}
		m, d := newTestMailbox(r)
		defer d.stop()
		m.PostUserMessage("block")
		synctest.Wait() // the run is inside "block"
		m.PostUserMessage("u1")
		m.PostSystemMessage("s1")
		close(release)
		synctest.Wait()
		if want := []string{"u:block", "s:s1", "u:u1"}; !slices.Equal(r.seen, want) {
			t.Fatalf("order %v, want %v", r.seen, want)
		}

		m.PostSystemMessage(&actor.SuspendMailbox{})
		m.PostUserMessage("u2")
		m.PostSystemMessage("s2")
		synctest.Wait()
		if want := []string{"u:block", "s:s1", "u:u1", "s:s2"}; !slices.Equal(r.seen, want) {
			t.Fatalf("while suspended: %v, want %v", r.seen, want)
		}
		m.PostSystemMessage(&actor.ResumeMailbox{})
		synctest.Wait()
		if got := r.seen[len(r.seen)-1]; got != "u:u2" || m.UserMessageCount() != 0 {
			t.Fatalf("after resume: last %q, %d counted; want u:u2 delivered", got, m.UserMessageCount())
		}
	})
}

// A queue that never empties keeps no more than twice its backlog.
func TestMsgQueueBacklogStaysBounded(t *testing.T) {
	var q msgQueue
	q.push(0)
	for i := 1; i <= 1_000_000; i++ {
		q.push(i)
		q.pop()
	}
	t.Logf("1 message queued, backing array cap %d (%d bytes)", cap(q.items), cap(q.items)*16)
	if cap(q.items) > 1024 {
		t.Errorf("backing array grew to %d slots with one message queued", cap(q.items))
	}
}
