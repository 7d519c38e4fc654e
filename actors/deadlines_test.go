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

// firings records which deadlines fired and when.
type firings struct {
	mu  sync.Mutex
	got []string
}

func (f *firings) fire(start time.Time) func(*actor.PID) {
	return func(pid *actor.PID) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.got = append(f.got, fmt.Sprintf("%s@%s", pid.Id, time.Since(start)))
	}
}

func (f *firings) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := f.got
	f.got = nil
	return got
}

// Each deadline fires once, at its time, in order; a deadline set again
// fires at its new time only, earlier or later; a removed one never fires.
func TestDeadlinesFireAtTheirTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var f firings
		q := newDeadlines(f.fire(start))
		defer q.stop()
		es := make([]deadlineEntry, 5)
		pid := func(i int) *actor.PID { return actor.NewPID("test", fmt.Sprint(i)) }
		for i, after := range []time.Duration{3, 1, 2, 5, 4} {
			q.set(&es[i], pid(i), start.Add(after*time.Second))
		}
		q.set(&es[3], pid(3), start.Add(500*time.Millisecond)) // earlier than every other
		q.set(&es[1], pid(1), start.Add(6*time.Second))        // later
		q.remove(&es[4])
		q.remove(&es[4]) // twice: no effect
		if n := q.len(); n != 4 {
			t.Fatalf("queued: %d, want 4", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		want := []string{"3@500ms", "2@2s", "0@3s", "1@6s"}
		if got := f.take(); !slices.Equal(got, want) {
			t.Fatalf("fired %v, want %v", got, want)
		}
		if n := q.len(); n != 0 {
			t.Fatalf("queued after all fired: %d, want 0", n)
		}

		// An entry that fired can be set again.
		q.set(&es[0], pid(0), time.Now().Add(time.Second))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := f.take(); !slices.Equal(got, []string{"0@11s"}) {
			t.Fatalf("set again after firing: fired %v, want [0@11s]", got)
		}
	})
}

// Deadlines due at the same instant fire together; a deadline already past
// when set fires at once; after stop nothing fires.
func TestDeadlinesSameInstantPastAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var f firings
		q := newDeadlines(f.fire(start))
		es := make([]deadlineEntry, 3)
		for i := range es {
			q.set(&es[i], actor.NewPID("test", fmt.Sprint(i)), start.Add(time.Second))
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := f.take()
		slices.Sort(got)
		if want := []string{"0@1s", "1@1s", "2@1s"}; !slices.Equal(got, want) {
			t.Fatalf("same instant: fired %v, want %v", got, want)
		}
		q.set(&es[0], actor.NewPID("test", "past"), start)
		synctest.Wait()
		if got := f.take(); !slices.Equal(got, []string{"past@1s"}) {
			t.Fatalf("set in the past: fired %v, want [past@1s]", got)
		}
		q.set(&es[1], actor.NewPID("test", "1"), time.Now().Add(time.Second))
		q.stop()
		q.set(&es[2], actor.NewPID("test", "2"), time.Now().Add(time.Second))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := f.take(); len(got) != 0 {
			t.Fatalf("after stop: fired %v, want nothing", got)
		}
	})
}

// More deadlines than a burst at one instant all fire, each once.
func TestDeadlinesBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		fired := map[string]int{}
		q := newDeadlines(func(pid *actor.PID) {
			mu.Lock()
			fired[pid.Id]++
			mu.Unlock()
		})
		defer q.stop()
		n := 3*deadlineBurst + 7
		es := make([]deadlineEntry, n)
		at := time.Now().Add(time.Second)
		for i := range es {
			q.set(&es[i], actor.NewPID("test", fmt.Sprint(i)), at)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(fired) != n {
			t.Fatalf("%d deadlines fired, want %d", len(fired), n)
		}
		for id, k := range fired {
			if k != 1 {
				t.Fatalf("deadline %s fired %d times, want 1", id, k)
			}
		}
		if q.len() != 0 {
			t.Fatalf("queued after the burst: %d, want 0", q.len())
		}
	})
}
