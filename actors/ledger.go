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
	l.mu.Lock()
	defer l.mu.Unlock()
	room := limit - l.bytes[address] - l.holds[address]
	if room <= 0 || want <= 0 {
		return 0
	}
	grant := min(want, room)
	l.bytes[address] += grant
	return grant
}

// hold is reserve for a chunk request's hold; unhold gives it back.
func (l *ledger) hold(address string, want, limit int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := limit - l.bytes[address] - l.holds[address]
	if room <= 0 || want <= 0 {
		return 0
	}
	grant := min(want, room)
	l.holds[address] += grant
	return grant
}

func (l *ledger) unhold(address string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if left := l.holds[address] - n; left > 0 {
		l.holds[address] = left
	} else {
		delete(l.holds, address)
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
func (l *ledger) release(address string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	left := l.bytes[address] - n
	if left <= 0 {
		delete(l.bytes, address)
		return
	}
	l.bytes[address] = left
}

// room is what the address may still take, holds counted.
func (l *ledger) room(address string, limit int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(0, limit-l.bytes[address]-l.holds[address])
}
