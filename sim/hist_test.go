package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBuckets checks that every value lands in a bucket whose range holds
// it, that buckets are contiguous, and that they are at most 1/64 wide.
func TestBuckets(t *testing.T) {
	prevHi := int64(-1)
	for i := range nBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if hi < lo || i >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/64+1e-12 {
			t.Fatalf("bucket %d is [%d, %d]", i, lo, hi)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			if i != nBuckets-1 {
				t.Fatalf("int64 ends in bucket %d of %d", i, nBuckets)
			}
			return
		}
	}
	t.Fatalf("buckets end at %d, before MaxInt64", prevHi)
}

// TestQuantiles compares the histogram's percentiles with exact ones on a
// skewed sample: within the buckets' 1.6 %.
func TestQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond)) // long tail
		h.Record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	s := h.Snapshot()
	if s.N != uint64(len(all)) || s.Max != all[len(all)-1] {
		t.Fatalf("N %d max %v, want %d and %v", s.N, s.Max, len(all), all[len(all)-1])
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		want := all[int(math.Ceil(q*float64(len(all))))-1]
		got := s.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.016 {
			t.Errorf("p%g = %v, want %v (off by %.2f%%)", 100*q, got, want, 100*rel)
		}
	}
}

// TestQuantileEdges covers the empty histogram, one value, small exact
// values and a window between two snapshots.
func TestQuantileEdges(t *testing.T) {
	var h Histogram
	if got := h.Snapshot().Quantile(0.99); got != 0 {
		t.Errorf("empty p99 = %v, want 0", got)
	}
	h.Record(42)
	if got := h.Snapshot().Quantile(0.5); got != 42 {
		t.Errorf("one value: p50 = %v, want 42ns (exact below 128)", got)
	}
	h.Record(-5) // counts as 0
	if got := h.Snapshot().Quantile(0); got != 0 {
		t.Errorf("p0 = %v, want 0", got)
	}
	before := h.Snapshot()
	for range 99 {
		h.Record(time.Second)
	}
	h.Record(2 * time.Second)
	win := h.Snapshot().Sub(before)
	if win.N != 100 {
		t.Fatalf("window holds %d values, want 100", win.N)
	}
	if got := win.Quantile(0.5); math.Abs(float64(got-time.Second)) > 0.016*float64(time.Second) {
		t.Errorf("window p50 = %v, want 1s", got)
	}
	if got := win.Quantile(1); got != 2*time.Second {
		t.Errorf("window p100 = %v, want 2s (clamped to the max)", got)
	}
}

// TestHistogramConcurrent records from many goroutines (run with -race).
func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000 + i))
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	if s := h.Snapshot(); s.N != 8000 || s.Max != 7999 {
		t.Fatalf("N %d max %v, want 8000 and 7.999µs", s.N, s.Max)
	}
}
