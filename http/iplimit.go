package http

import (
	"net/netip"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
)

// ipLimiter is a token bucket per client address: rate requests a second
// on average, bursts of up to burst. IPv6 clients are counted by /64, the
// block one subscriber usually gets, so that a client cannot pick a fresh
// address for every request. Buckets that have filled up again are
// forgotten when the table grows past maxIPBuckets, so it holds only the
// clients seen lately, however many there were. When a pruning frees
// little (many clients at once), the next waits until the table has
// doubled: each new client costs constant work on average.
type ipLimiter struct {
	rate  float64
	burst int
	now   func() time.Time

	mu      sync.Mutex
	by      map[string]*sluice.Bucket
	pruneAt int // table size from which the next new client prunes
}

// maxIPBuckets is the table size from which full buckets are pruned.
const maxIPBuckets = 1 << 14

func newIPLimiter(rate float64, burst int) *ipLimiter {
	if rate <= 0 {
		return nil
	}
	return &ipLimiter{rate: rate, burst: max(1, burst), now: time.Now, by: map[string]*sluice.Bucket{}, pruneAt: maxIPBuckets}
}

// allow takes one request of the client at ip (as clientIP gives it); it
// fails with a *sluice.LimitedError when the client is over its rate. A
// nil limiter allows everything.
func (l *ipLimiter) allow(ip string) error {
	if l == nil {
		return nil
	}
	key := ipKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now() // under the lock, so a bucket's time never goes back
	b := l.by[key]
	if b == nil {
		if len(l.by) >= l.pruneAt {
			l.prune(now)
			l.pruneAt = max(maxIPBuckets, 2*len(l.by))
		}
		b = &sluice.Bucket{}
		l.by[key] = b
	}
	if ok, wait := b.Allow(now, l.rate, l.burst); !ok {
		return &sluice.LimitedError{RetryAfter: wait}
	}
	return nil
}

// prune forgets the buckets that are full again: a new bucket starts full,
// so forgetting them changes nothing. l.mu held.
func (l *ipLimiter) prune(now time.Time) {
	refill := float64(l.burst) / l.rate // seconds; may exceed a Duration
	for k, b := range l.by {
		if now.Sub(b.Last).Seconds() >= refill {
			delete(l.by, k)
		}
	}
}

// ipKey is the bucket's key for a client address: IPv4 as is, IPv6 by its
// /64, anything unparsable as given.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
