package actors

import (
	"net/netip"
	"sync"

	"github.com/sluicehq/sluice"
)

// ErrIPDisallowed is the answer to a client address that already holds the
// most live tokens allowed.
func errIPDisallowed(limit int) error {
	return sluice.Errorf(sluice.ErrInvalid, "IP Disallowed, only %d tokens are permitted per IP address", limit)
}

// clientKey is what the per-IP token limit counts by: an IPv4 address, or
// the /64 network of an IPv6 address (one host usually holds a whole /64,
// so counting single IPv6 addresses would limit nothing).
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// ipLedger counts live tokens per client address. Tokens are created
// outside any token actor, so it is shared (and locked), like the address
// ledger; it is rebuilt from live tokens at start-up.
type ipLedger struct {
	mu     sync.Mutex
	tokens map[string]int
}

func newIPLedger() *ipLedger { return &ipLedger{tokens: map[string]int{}} }

// take counts one more token for ip if it is under limit (0: no limit).
func (l *ipLedger) take(ip string, limit int) error {
	k := clientKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit > 0 && l.tokens[k] >= limit {
		return errIPDisallowed(limit)
	}
	l.tokens[k]++
	return nil
}

func (l *ipLedger) release(ip string) {
	k := clientKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tokens[k] <= 1 {
		delete(l.tokens, k)
		return
	}
	l.tokens[k]--
}

// move counts a token at to instead of from, if to has room.
func (l *ipLedger) move(from, to string, limit int) error {
	kf, kt := clientKey(from), clientKey(to)
	if kf == kt {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit > 0 && l.tokens[kt] >= limit {
		return errIPDisallowed(limit)
	}
	l.tokens[kt]++
	if l.tokens[kf] <= 1 {
		delete(l.tokens, kf)
	} else {
		l.tokens[kf]--
	}
	return nil
}
