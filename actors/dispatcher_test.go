package actors

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// blockingRun schedules a run that blocks until release is closed and reports, on
// started, that it began.
func blockingRun(d *reusingDispatcher, started *sync.WaitGroup, release <-chan struct{}) {
	started.Add(1)
	d.Schedule(func() {
		started.Done()
		<-release
	})
}

func TestDispatcherReusesAWaitingGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		defer d.stop()
		var started sync.WaitGroup
		release := make(chan struct{})
		blockingRun(d, &started, release)
		started.Wait()
		if got := d.waitingNow(); got != 0 {
			t.Fatalf("%d goroutines waiting while the only one runs, want 0", got)
		}
		close(release)
		synctest.Wait()
		if got := d.waitingNow(); got != 1 {
			t.Fatalf("%d goroutines waiting after the run, want 1", got)
		}

		// The next run goes to the waiting goroutine: none is left
		// waiting while it runs. A new goroutine would leave it there.
		release = make(chan struct{})
		blockingRun(d, &started, release)
		started.Wait()
		if got := d.waitingNow(); got != 0 {
			t.Fatalf("%d goroutines waiting during the second run, want 0 (it was not reused)", got)
		}
		close(release)
		synctest.Wait()
		if got := d.waitingNow(); got != 1 {
			t.Fatalf("%d goroutines waiting after the second run, want 1", got)
		}
	})
}

func TestDispatcherNeverWaitsForAGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		defer d.stop()
		// More runs at once than may wait: every one starts although
		// none has finished (a bounded pool would stall here).
		var started sync.WaitGroup
		release := make(chan struct{})
		for range 20 {
			blockingRun(d, &started, release)
		}
		started.Wait()
		close(release)
		synctest.Wait()
		if got := d.waitingNow(); got != 8 {
			t.Fatalf("%d goroutines waiting after a burst of 20, want the limit 8", got)
		}
	})
}

func TestDispatcherLetsIdleGoroutinesGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		var started sync.WaitGroup
		release := make(chan struct{})
		for range 3 {
			blockingRun(d, &started, release)
		}
		started.Wait()
		close(release)
		synctest.Wait()
		if got := d.waitingNow(); got != 3 {
			t.Fatalf("%d waiting, want 3", got)
		}
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if got := d.waitingNow(); got != 3 {
			t.Fatalf("%d waiting just before the idle time, want 3", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := d.waitingNow(); got != 0 {
			t.Fatalf("%d waiting after the idle time, want 0", got)
		}

		// stop sends the waiting goroutines away at once, and later runs
		// still run.
		blockingRun(d, &started, closed())
		synctest.Wait()
		if got := d.waitingNow(); got != 1 {
			t.Fatalf("%d waiting, want 1", got)
		}
		d.stop()
		d.stop()
		synctest.Wait()
		if got := d.waitingNow(); got != 0 {
			t.Fatalf("%d waiting after stop, want 0", got)
		}
		ran := make(chan struct{})
		d.Schedule(func() { close(ran) })
		<-ran
	})
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Under a steady trickle of runs the latest goroutine to become idle takes
// each one, so the others leave after the idle time instead of sharing
// the runs round-robin and all staying.
func TestDispatcherKeepsOnlyTheGoroutinesTheLoadNeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		defer d.stop()
		var started sync.WaitGroup
		release := make(chan struct{})
		for range 8 {
			blockingRun(d, &started, release)
		}
		started.Wait()
		close(release)
		synctest.Wait()
		if got := d.waitingNow(); got != 8 {
			t.Fatalf("%d waiting after 8 runs at once, want 8", got)
		}
		for range 25 { // one short run every 200 ms for 5 s
			time.Sleep(200 * time.Millisecond)
			d.Schedule(func() {})
			synctest.Wait()
		}
		if got := d.waitingNow(); got != 1 {
			t.Fatalf("%d waiting after a trickle of single runs, want 1", got)
		}
	})
}

// The engine's entity actors run on its dispatcher.
func TestEngineActorsRunOnTheReusingDispatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startWith(t, newMemStore(), Config{})
		defer n.stop()
		synctest.Wait()
		before := n.dispatch.waitingNow()
		// A token's actor is spawned and run on the engine's dispatcher;
		// its goroutine then waits for the next run.
		if _, err := n.NewToken(context.Background(), TokenRequest{Address: "0x0000000000000000000000000000000000000001", IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := n.dispatch.waitingNow(); got <= before {
			t.Fatalf("%d goroutines wait on the engine's dispatcher after a token was made (before: %d)", got, before)
		}
	})
}
