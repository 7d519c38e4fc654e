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

// runTogether makes n runs at once: each blocks until all n have
// started, then they finish and their goroutines settle.
func runTogether(d *reusingDispatcher, n int) {
	var started sync.WaitGroup
	release := make(chan struct{})
	for range n {
		blockingRun(d, &started, release)
	}
	started.Wait()
	close(release)
	synctest.Wait()
}

func wantWaiting(t *testing.T, d *reusingDispatcher, want int, when string) {
	t.Helper()
	if got := d.waitingNow(); got != want {
		t.Fatalf("%d goroutines waiting %s, want %d", got, when, want)
	}
}

func TestDispatcherReusesAWaitingGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		defer d.stop()
		var started sync.WaitGroup
		release := make(chan struct{})
		blockingRun(d, &started, release)
		started.Wait()
		wantWaiting(t, d, 0, "while the only one runs")
		close(release)
		synctest.Wait()
		wantWaiting(t, d, 1, "after the run")

		// The next run goes to the waiting goroutine: none is left
		// waiting while it runs. A new goroutine would leave it there.
		release = make(chan struct{})
		blockingRun(d, &started, release)
		started.Wait()
		wantWaiting(t, d, 0, "during the second run (else it was not reused)")
		close(release)
		synctest.Wait()
		wantWaiting(t, d, 1, "after the second run")
	})
}

func TestDispatcherNeverWaitsForAGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		defer d.stop()
		// More runs at once than may wait: every one starts although
		// none has finished (a bounded pool would stall here).
		runTogether(d, 20)
		wantWaiting(t, d, 8, "after a burst of 20 (the limit)")
	})
}

func TestDispatcherLetsIdleGoroutinesGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		runTogether(d, 3)
		wantWaiting(t, d, 3, "after 3 runs at once")
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		wantWaiting(t, d, 3, "just before the idle time")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		wantWaiting(t, d, 0, "after the idle time")

		// stop sends the waiting goroutines away at once, and later runs
		// still run.
		runTogether(d, 1)
		wantWaiting(t, d, 1, "after a run")
		d.stop()
		d.stop()
		synctest.Wait()
		wantWaiting(t, d, 0, "after stop")
		ran := make(chan struct{})
		d.Schedule(func() { close(ran) })
		<-ran
	})
}

// Under a steady trickle of runs the latest goroutine to become idle takes
// each one, so the others leave after the idle time instead of sharing
// the runs round-robin and all staying.
func TestDispatcherKeepsOnlyTheGoroutinesTheLoadNeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		defer d.stop()
		runTogether(d, 8)
		wantWaiting(t, d, 8, "after 8 runs at once")
		for range 25 { // one short run every 200 ms for 5 s
			time.Sleep(200 * time.Millisecond)
			d.Schedule(func() {})
			synctest.Wait()
		}
		wantWaiting(t, d, 1, "after a trickle of single runs")
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

// Each waiting goroutine leaves a full idle time after its own last run:
// the one timer of the dispatcher re-arms for the next to come of age.
func TestDispatcherIdleTimeCountsFromEachGoroutinesLastRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newReusingDispatcher(10, time.Second, 8)
		defer d.stop()
		runTogether(d, 2)
		wantWaiting(t, d, 2, "after 2 runs at once")
		time.Sleep(600 * time.Millisecond)
		d.Schedule(func() {}) // the top goroutine runs again, idle anew
		synctest.Wait()
		time.Sleep(400 * time.Millisecond)
		synctest.Wait()
		wantWaiting(t, d, 1, "1 s after the first runs (the other ran 0.4 s ago)")
		time.Sleep(600*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		wantWaiting(t, d, 1, "just before 1 s after the last run")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		wantWaiting(t, d, 0, "1 s after the last run")
	})
}
