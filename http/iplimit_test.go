package http

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestIPKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":             "203.0.113.7",
		"2001:db8:1:2:3:4:5:6":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":    "2001:db8:1:2::/64",
		"2001:db8:1:3::1":         "2001:db8:1:3::/64",
		"::ffff:203.0.113.7":      "203.0.113.7",
		"not an address":          "not an address",
		"fe80::1%eth0":            "fe80::/64",
		"2001:db8:0:0:0:0:0:0001": "2001:db8::/64",
	} {
		if got := ipKey(in); got != want {
			t.Errorf("ipKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIPLimiter: each address has its own bucket of burst requests that
// refills at rate; a /64 shares one; buckets full again are forgotten
// once the table is large, and the others are kept.
func TestIPLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newIPLimiter(2, 3)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if err := l.allow("203.0.113.1"); err != nil {
			t.Fatalf("request %d of the burst: %v", i+1, err)
		}
	}
	err := l.allow("203.0.113.1")
	var lim *sluice.LimitedError
	if !errors.As(err, &lim) || lim.RetryAfter != 500*time.Millisecond {
		t.Fatalf("over the burst: got %v, want a LimitedError with RetryAfter 500ms", err)
	}
	if err := l.allow("203.0.113.2"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	for i := range 3 {
		if err := l.allow(fmt.Sprintf("2001:db8::%x", i+1)); err != nil {
			t.Fatalf("IPv6 request %d: %v", i+1, err)
		}
	}
	if err := l.allow("2001:db8::ffff"); err == nil {
		t.Fatal("a fourth address of the same /64 was allowed past the burst")
	}
	now = now.Add(500 * time.Millisecond)
	if err := l.allow("203.0.113.1"); err != nil {
		t.Fatalf("after the refill of one request: %v", err)
	}

	// Fill the table: the buckets of 203.0.113.2 and the /64 are full
	// again by then and go; 203.0.113.1, used just now, stays.
	now = now.Add(1499 * time.Millisecond)
	for i := len(l.by); i < maxIPBuckets; i++ {
		l.by[fmt.Sprintf("filler-%d", i)] = &sluice.Bucket{Tokens: 3, Last: now.Add(-time.Hour)}
	}
	if err := l.allow("198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.by["203.0.113.1"]; !ok {
		t.Error("a bucket still refilling was forgotten")
	}
	if _, ok := l.by["203.0.113.2"]; ok {
		t.Error("a full bucket was kept")
	}
	if n := len(l.by); n != 2 {
		t.Errorf("buckets after pruning: %d, want 2", n)
	}
	if newIPLimiter(0, 10) != nil {
		t.Error("rate 0 made a limiter")
	}
}

// TestIPLimiterPrunesRarelyWhenEveryoneIsActive: a table of clients that
// all asked just now has nothing to forget; a pruning that frees nothing
// puts the next one off until the table has doubled, so a stream of new
// clients does not scan the whole table each.
func TestIPLimiterPrunesRarelyWhenEveryoneIsActive(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newIPLimiter(2, 60)
	l.now = func() time.Time { return now }
	for i := range maxIPBuckets {
		l.by[fmt.Sprintf("2001:db8:%x:%x::/64", i>>16, i&0xffff)] = &sluice.Bucket{Tokens: 59, Last: now}
	}
	if err := l.allow("198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if want := 2 * maxIPBuckets; l.pruneAt != want {
		t.Fatalf("after a pruning that freed nothing: next at %d buckets, want %d", l.pruneAt, want)
	}
	for i := range maxIPBuckets - 2 {
		l.allow(fmt.Sprintf("10.%d.%d.1", i>>8, i&0xff))
	}
	if l.pruneAt != 2*maxIPBuckets || len(l.by) != 2*maxIPBuckets-1 {
		t.Fatalf("pruned again before the table doubled: next at %d, %d buckets", l.pruneAt, len(l.by))
	}
	// Once they are all idle long enough, the next pruning frees them.
	now = now.Add(31 * time.Second)
	l.allow("198.51.100.2")
	l.allow("198.51.100.3")
	if len(l.by) != 2 || l.pruneAt != maxIPBuckets {
		t.Fatalf("after idle clients were pruned: %d buckets, next at %d; want 2 and %d", len(l.by), l.pruneAt, maxIPBuckets)
	}
}

// TestIPLimiterHugeRefill: a burst that takes longer than a Duration can
// hold to refill does not make every bucket look full.
func TestIPLimiterHugeRefill(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newIPLimiter(1.0/86400, 200_000)
	l.now = func() time.Time { return now }
	l.by["203.0.113.1"] = &sluice.Bucket{Tokens: 1, Last: now.Add(-time.Hour)}
	l.prune(now)
	if _, ok := l.by["203.0.113.1"]; !ok {
		t.Fatal("a bucket far from full was pruned")
	}
}
