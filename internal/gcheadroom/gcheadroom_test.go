package gcheadroom

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		base        int
		floor, live uint64
		want        int
	}{
		{100, 256 * mib, 32 * mib, 800},   // small heap: the floor wins
		{100, 256 * mib, 100 * mib, 256},  // rounded up, never under the floor
		{100, 256 * mib, 256 * mib, 100},  // equal: GOGC's own headroom
		{100, 256 * mib, 1024 * mib, 100}, // large heap: never below base
		{300, 256 * mib, 128 * mib, 300},  // an operator's GOGC is a floor too
		{100, 256 * mib, 0, 1e6},          // an empty heap: capped
	} {
		if got := Percent(c.base, c.floor, c.live); got != c.want {
			t.Errorf("Percent(%d, %d MiB, %d MiB) = %d, want %d", c.base, c.floor/mib, c.live/mib, got, c.want)
		}
	}
}

// runtimeGOGC is the GOGC the runtime uses now.
func runtimeGOGC(t *testing.T) int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatal("runtime/metrics has no /gc/gogc:percent")
	}
	return int(s[0].Value.Uint64())
}

// collectUntil runs collections until cond holds, at most 200 of them (the
// floor adjusts on the runtime's cleanup goroutine after a collection).
func collectUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		runtime.GC()
		runtime.Gosched()
	}
	t.Fatalf("after 200 collections: %s", what)
}

// collect runs n collections, letting the floor's cleanup run after each.
func collect(n int) {
	for range n {
		runtime.GC()
		runtime.Gosched()
	}
}

// The test binary's live heap is a few MiB: a 512 MiB floor raises GOGC
// well above 100 after a collection, and Stop puts it back.
func TestFloorRaisesGOGCOnSmallHeap(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	f := Start(512 << 20)
	defer f.Stop()
	collectUntil(t, "GOGC never raised", func() bool { return runtimeGOGC(t) > 1000 })
	// A cleanup may run between two reads: compare once they agree.
	collectUntil(t, "the runtime's GOGC never matched the floor's", func() bool { return runtimeGOGC(t) == f.GOGC() })
	f.Stop()
	if got := runtimeGOGC(t); got != 100 {
		t.Errorf("GOGC after Stop = %d, want 100", got)
	}
	// Stopped: collections change nothing any more.
	debug.SetGCPercent(150)
	collect(5)
	if got := runtimeGOGC(t); got != 150 {
		t.Errorf("GOGC after Stop and collections = %d, want 150", got)
	}
}

// A live heap bigger than the floor keeps the base GOGC; a floor of 0
// changes nothing at all.
func TestFloorLeavesLargeHeapAndZeroAlone(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	hold := make([][]byte, 64)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
	}
	f := Start(8 << 20) // below the 64 MiB held
	defer f.Stop()
	collect(5)
	if got := runtimeGOGC(t); got != 100 {
		t.Errorf("GOGC with 64 MiB live and an 8 MiB floor = %d, want 100", got)
	}
	runtime.KeepAlive(hold)
	f.Stop()

	z := Start(0)
	defer z.Stop()
	debug.SetGCPercent(120)
	collect(5)
	if got := runtimeGOGC(t); got != 120 {
		t.Errorf("GOGC with no floor = %d, want 120 (left alone)", got)
	}
}

// GOGC=off stays off.
func TestFloorLeavesGCOff(t *testing.T) {
	base := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(base)
	f := Start(512 << 20)
	defer f.Stop()
	collect(3)
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC = %d after a floor started with GC off, want off", got)
	}
}

func readMetric(t *testing.T, name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("runtime/metrics has no %s", name)
	}
	return s[0].Value.Uint64()
}

// deepStack holds a goroutine with a stack of some 32 KiB until done.
func deepStack(n int, ready *sync.WaitGroup, done <-chan struct{}) {
	var pad [1024]byte
	if n > 0 {
		deepStack(n-1, ready, done)
		runtime.KeepAlive(pad)
		return
	}
	ready.Done()
	<-done
}

// GOGC scales the stacks and globals a collection scans as well as the
// live heap: with 60 MiB or so of goroutine stacks, the floor still puts
// the heap goal about its size above the live heap, not GOGC times the
// stacks above it.
func TestFloorCountsStacks(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	done := make(chan struct{})
	defer close(done)
	var ready sync.WaitGroup
	for range 2000 {
		ready.Add(1)
		go deepStack(30, &ready, done)
	}
	ready.Wait()
	const floor = 512 << 20
	f := Start(floor)
	defer f.Stop()
	collectUntil(t, "GOGC never raised", func() bool { return runtimeGOGC(t) > 200 })
	runtime.GC()
	live, goal := readMetric(t, "/gc/heap/live:bytes"), readMetric(t, "/gc/heap/goal:bytes")
	if goal > live+floor+floor/4 {
		t.Fatalf("heap goal %d MiB with %d MiB live and %d MiB of stacks: want about the %d MiB floor above live",
			goal>>20, live>>20, readMetric(t, "/gc/scan/stack:bytes")>>20, floor>>20)
	}
}
