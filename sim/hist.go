package sim

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram's buckets: values below 2^subBits are exact; above, each
// power of two is cut into 2^(subBits-1) buckets, so a bucket is at most
// 1/64 (1.6 %) of its values wide. 3712 buckets cover every int64.
const (
	subBits  = 7
	subCount = 1 << subBits
	half     = subCount / 2
	nBuckets = half*(63-subBits) + subCount
)

// Histogram records durations in log-linear buckets, as HDR histograms do:
// constant memory (29 KiB), relative error below 1.6 %, and lock-free
// recording from any number of goroutines. The zero value is ready.
type Histogram struct {
	counts [nBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

// bucketOf returns the bucket of v ≥ 0.
func bucketOf(v int64) int {
	if v < subCount {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - subBits
	return half*shift + int(uint64(v)>>shift)
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := i/half - 1
	m := int64(i%half + half)
	lo = m << shift
	return lo, lo + (int64(1)<<shift - 1)
}

// Record adds one duration (negative counts as 0).
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Snapshot copies the counts. Recording may go on meanwhile; the copy is
// then not one instant's, which does not matter for percentiles.
func (h *Histogram) Snapshot() *HistSnapshot {
	s := &HistSnapshot{Max: time.Duration(h.max.Load())}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] = c
		s.N += c
	}
	return s
}

// HistSnapshot is a histogram's counts at one time, to read percentiles
// from or to subtract an earlier snapshot from.
type HistSnapshot struct {
	counts [nBuckets]uint64
	// N is the number of values; Max the largest value recorded (over
	// the histogram's whole life, also in a difference).
	N   uint64
	Max time.Duration
}

// Sub returns the values recorded between prev and s (prev may be nil).
func (s *HistSnapshot) Sub(prev *HistSnapshot) *HistSnapshot {
	d := *s
	if prev == nil {
		return &d
	}
	d.N = 0
	for i := range d.counts {
		d.counts[i] = s.counts[i] - min(prev.counts[i], s.counts[i])
		d.N += d.counts[i]
	}
	return &d
}

// Quantile returns the value at quantile q in [0, 1]: the middle of the
// bucket holding the ⌈q·N⌉-th smallest value, never above Max. An empty
// snapshot gives 0.
func (s *HistSnapshot) Quantile(q float64) time.Duration {
	if s.N == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(s.N)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			if s.Max > 0 {
				v = min(v, int64(s.Max))
			}
			return time.Duration(v)
		}
	}
	return s.Max
}
