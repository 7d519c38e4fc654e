package proof

import "sync"

// arena is the memory of one proof's decoding and verification, reused
// from proof to proof (see merkleSegment.Verify): a node verifies
// thousands of proofs a second, and their leaves were most of what it
// allocated.
type arena struct {
	data     []byte
	hashes   []Hash
	leaves   []wireLeafValue
	proof    []LeafProof
	answered []bool
	x        *hasher
}

// arenas are the proofs' arenas not in use.
var arenas = sync.Pool{New: func() any { return new(arena) }}

// maxArena is the most bytes of leaf data an arena keeps for the next
// proof: a usual proof needs a few kilobytes, and one huge proof should
// not pin its memory.
const maxArena = 1 << 20

// release resets a and returns it to the pool.
func (a *arena) release() {
	if cap(a.data) > maxArena || cap(a.hashes) > maxArena/len(Hash{}) {
		return
	}
	a.reset()
	arenas.Put(a)
}

func (a *arena) hasher() *hasher {
	if a.x == nil {
		a.x = newHasher()
	}
	return a.x
}

// bytes returns n bytes from the arena.
func (a *arena) bytes(n int) []byte {
	if cap(a.data)-len(a.data) < n {
		a.data = make([]byte, 0, max(2*cap(a.data), n, 4096))
	}
	start := len(a.data)
	a.data = a.data[:start+n]
	return a.data[start : start+n : start+n]
}

// reset empties the arena for the next proof.
func (a *arena) reset() {
	a.data, a.hashes = a.data[:0], a.hashes[:0]
	clear(a.leaves[:cap(a.leaves)])
	clear(a.proof[:cap(a.proof)])
}
