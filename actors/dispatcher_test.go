package actors

import (
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
		if got := d.waiting.Load(); got != 0 {
			t.Fatalf("%d goroutines waiting while the only one runs, want 0", got)
		}
		close(release)
		synctest.Wait()
		if got := d.waiting.Load(); got != 1 {
			t.Fatalf("%d goroutines waiting after the run, want 1", got)
		}

		// The next run goes to the waiting goroutine: none is left
		// waiting while it runs. A new goroutine would leave it there.
		release = make(chan struct{})
		blockingRun(d, &started, release)
		started.Wait()
		if got := d.waiting.Load(); got != 0 {
			t.Fatalf("%d goroutines waiting during the second run, want 0 (it was not reused)", got)
		}
		close(release)
		synctest.Wait()
		if got := d.waiting.Load(); got != 1 {
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
		if got := d.waiting.Load(); got != 8 {
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
		if got := d.waiting.Load(); got != 3 {
			t.Fatalf("%d waiting, want 3", got)
		}
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if got := d.waiting.Load(); got != 3 {
			t.Fatalf("%d waiting just before the idle time, want 3", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := d.waiting.Load(); got != 0 {
			t.Fatalf("%d waiting after the idle time, want 0", got)
		}

		// stop sends the waiting goroutines away at once, and later runs
		// still run.
		blockingRun(d, &started, closed())
		synctest.Wait()
		if got := d.waiting.Load(); got != 1 {
			t.Fatalf("%d waiting, want 1", got)
		}
		d.stop()
		d.stop()
		synctest.Wait()
		if got := d.waiting.Load(); got != 0 {
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
