package actors

import (
	"testing"
	"testing/synctest"
	"time"
)

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestSharedTicksServeEveryWaiterOfAPeriodWithOneChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ticks := newSharedTicks(20 * time.Millisecond)
		a := ticks.wait()
		time.Sleep(15 * time.Millisecond)
		b := ticks.wait()
		if a != b {
			t.Fatal("two waiters of one period got different channels")
		}
		time.Sleep(5*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		if closed(a) {
			t.Fatal("the tick came before its period ended")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !closed(a) {
			t.Fatal("no tick a period after the first waiter began")
		}

		// After a spell with nobody waiting, the next waiter starts a
		// new period with a new channel.
		time.Sleep(time.Second)
		c := ticks.wait()
		if c == a || closed(c) {
			t.Fatal("a waiter after an idle spell got the old, closed channel")
		}
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		if !closed(c) {
			t.Fatal("no tick a period after the wait")
		}
	})
}
