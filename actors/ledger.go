package actors

import "sync"

// ledger counts the live contract bytes of each payout address, across all
// of the address's tokens. Token actors reserve before they issue contracts
// and release when contracts close; it is rebuilt from the live contracts at
// start-up. It is shared by many token actors, hence the lock: an address
// is not an actor of its own.
//
// Besides the contracts' bytes it counts holds: room a chunk request keeps
// while it makes chunks (seconds of CPU), so that parallel requests of the
// address do not make chunks for the same room. Holds count against the
// limit like contracts; free tells what the address could take without
// them.
type ledger struct {
	mu    sync.Mutex
	bytes map[string]int64
	holds map[string]int64
}

func newLedger() *ledger { return &ledger{bytes: map[string]int64{}, holds: map[string]int64{}} }

// reserve grants up to want bytes for address within limit and returns what
// it granted.
func (l *ledger) reserve(address string, want, limit int64) int64 {
	return l.grant(l.bytes, address, want, limit)
}

// hold is reserve for a chunk request's hold; unhold gives it back.
func (l *ledger) hold(address string, want, limit int64) int64 {
	return l.grant(l.holds, address, want, limit)
}

func (l *ledger) unhold(address string, n int64) { l.drop(l.holds, address, n) }

// grant counts up to want bytes in into, within limit for the contracts
// and holds together, and returns what it counted.
func (l *ledger) grant(into map[string]int64, address string, want, limit int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := limit - l.bytes[address] - l.holds[address]
	if room <= 0 || want <= 0 {
		return 0
	}
	g := min(want, room)
	into[address] += g
	return g
}

// drop takes n bytes off address in from.
func (l *ledger) drop(from map[string]int64, address string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if left := from[address] - n; left > 0 {
		from[address] = left
	} else {
		delete(from, address)
	}
}

// free is what the address could still take were nothing held.
func (l *ledger) free(address string, limit int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(0, limit-l.bytes[address])
}

// add counts bytes already taken (contracts loaded at start-up), with no
// limit.
func (l *ledger) add(address string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bytes[address] += n
}

// release returns bytes to the address.
func (l *ledger) release(address string, n int64) { l.drop(l.bytes, address, n) }

// room is what the address may still take, holds counted.
func (l *ledger) room(address string, limit int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(0, limit-l.bytes[address]-l.holds[address])
}
