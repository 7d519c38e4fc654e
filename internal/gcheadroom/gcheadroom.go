// Package gcheadroom keeps the garbage collector's heap goal at least a
// fixed number of bytes above the live heap.
//
// With GOGC's default of 100 the heap may grow to twice the live heap
// before the next collection. A node holding few contracts has a small
// live heap, so under thousands of answers a second it collects many times
// a second, and every collection costs a fixed part of marking and
// sweeping besides: profiles of the answer path put the collector at
// 12–17 % of the node's CPU (docs/benchmarks.md). Collections a second
// fall as the headroom grows, so a floor under the headroom makes the
// small node's collections rarer, at a fixed cost in memory. A large node
// is left alone: once the live heap is bigger than the floor, GOGC's own
// headroom is the larger one and the floor changes nothing.
//
// The floor is applied after each collection by raising GOGC for the next
// cycle. It never lowers GOGC below what the process started with (the
// GOGC variable, or 100), and GOMEMLIMIT, when set, still bounds the heap:
// the runtime collects early near the limit whatever GOGC says.
package gcheadroom

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Floor holds the heap goal at least Bytes above the live heap while it
// runs. Start one with Start.
type Floor struct {
	bytes   uint64
	base    int // GOGC when it started; never gone below
	stopped atomic.Bool
	mu      sync.Mutex // orders adjust against Stop
	percent int        // what adjust last set
	samples []metrics.Sample
}

// sentinel is an object that nothing references: its cleanup runs after
// the collection that found it, and arms the next one. It holds a pointer
// and is bigger than 16 bytes so that it is never combined with other
// objects by the tiny allocator (whose blocks may outlive it).
type sentinel struct {
	_ *byte
	_ [24]byte
}

// Start keeps the heap goal at least bytes above the live heap from the
// next collection on. It does nothing when bytes is 0 or GOGC is off.
// Stop ends it; at most one Floor should run in a process, as each sets
// the process-wide GOGC.
func Start(bytes uint64) *Floor {
	f := &Floor{bytes: bytes, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	f.base = debug.SetGCPercent(-1)
	debug.SetGCPercent(f.base)
	f.percent = f.base
	if bytes == 0 || f.base < 0 {
		f.stopped.Store(true)
		return f
	}
	f.arm()
	return f
}

func (f *Floor) arm() {
	runtime.AddCleanup(new(sentinel), func(f *Floor) { f.collected() }, f)
}

// collected runs after each collection, on the runtime's cleanup goroutine.
func (f *Floor) collected() {
	if f.stopped.Load() {
		return
	}
	metrics.Read(f.samples)
	// The runtime's heap goal is live + (live + stacks + globals) × GOGC/100:
	// GOGC scales all the memory a collection scans, not the heap alone.
	var scanned uint64
	for _, s := range f.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			scanned += s.Value.Uint64()
		}
	}
	f.adjust(scanned)
	f.arm()
}

// adjust sets GOGC for scanned bytes of live heap, stacks and globals.
func (f *Floor) adjust(scanned uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Load() {
		return
	}
	want := Percent(f.base, f.bytes, scanned)
	// Any rise is made, so the headroom is never under the floor; a fall
	// only once it is an eighth or more (each call takes the heap lock).
	if want > f.percent || (want < f.percent && (want == f.base || f.percent-want >= f.percent/8)) {
		debug.SetGCPercent(want)
		f.percent = want
	}
}

// Percent is the GOGC that puts the heap goal at least floor bytes above
// the live heap, when a collection scans scanned bytes (live heap, stacks
// and globals), and never below base.
func Percent(base int, floor, scanned uint64) int {
	if scanned == 0 {
		scanned = 1
	}
	p := math.Ceil(float64(floor) * 100 / float64(scanned))
	// A nearly empty heap would ask for an absurd GOGC; past a million
	// percent the goal is far beyond any floor anyway.
	if p > 1e6 {
		p = 1e6
	}
	if int(p) < base {
		return base
	}
	return int(p)
}

// Stop ends the floor and puts GOGC back to what it was at Start.
func (f *Floor) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(f.base)
	f.percent = f.base
}

// GOGC is the percent the floor set last (the base when it has set none).
func (f *Floor) GOGC() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}
