package proof

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
)

// Challenge asks a farmer for some leaves of a chunk. The seed comes from a
// cryptographic random generator when the challenge is issued, so nothing
// can be precomputed; the indices are derived from it by NewChallenge, but
// the farmer simply answers the list.
//
// In JSON: {"seed": "<base64 of 32 bytes>", "indices": [i1, ..., ik]}.
type Challenge struct {
	Seed    [32]byte
	Indices []uint32
}

type challengeJSON struct {
	Seed    *Hash     `json:"seed"`
	Indices *[]uint32 `json:"indices"`
}

// MarshalJSON encodes the seed in base64 and the indices as an array
// (never null).
func (c Challenge) MarshalJSON() ([]byte, error) {
	seed := Hash(c.Seed)
	indices := c.Indices
	if indices == nil {
		indices = []uint32{}
	}
	return json.Marshal(challengeJSON{Seed: &seed, Indices: &indices})
}

// UnmarshalJSON decodes a challenge; both fields are required, the seed
// must be exactly 32 bytes and the indices an array of uint32.
func (c *Challenge) UnmarshalJSON(b []byte) error {
	var w challengeJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Seed == nil || w.Indices == nil {
		return errors.New("challenge needs a seed and indices")
	}
	*c = Challenge{Seed: *w.Seed, Indices: *w.Indices}
	return nil
}

// String returns the seed in base64 and the indices, for logs.
func (c Challenge) String() string {
	b, _ := json.Marshal(c.Indices)
	return base64.StdEncoding.EncodeToString(c.Seed[:]) + " " + string(b)
}

// NewChallenge derives from seed a challenge for a chunk of the given
// number of leaves: min(k, leaves, MaxProofLeaves) distinct leaf indices,
// in draw order. The derivation, which other implementations may repeat
// to check a node, is:
//
//	for j = 0, 1, 2, ...:
//	    d   = SHA-256(seed ‖ uint32 big-endian j)    (36 bytes hashed)
//	    idx = uint64 big-endian of d[0:8] mod leaves
//	    append idx unless it was already drawn
//	until enough indices are drawn.
//
// The modulo bias is below 2^-31 for any chunk. If leaves is not in
// [1, MaxLeaves] or k < 1 the challenge has no indices, and Verify rejects
// every answer to it.
func NewChallenge(seed [32]byte, leaves int64, k int) Challenge {
	ch := Challenge{Seed: seed}
	if leaves < 1 || leaves > MaxLeaves || k < 1 {
		return ch
	}
	want := int(min(int64(k), leaves, MaxProofLeaves))
	ch.Indices = make([]uint32, 0, want)
	drawn := make(map[uint32]struct{}, want)
	var in [32 + 4]byte
	copy(in[:], seed[:])
	for j := uint32(0); len(ch.Indices) < want; j++ {
		binary.BigEndian.PutUint32(in[32:], j)
		d := sha256.Sum256(in[:])
		idx := uint32(binary.BigEndian.Uint64(d[:8]) % uint64(leaves))
		if _, ok := drawn[idx]; ok {
			continue
		}
		drawn[idx] = struct{}{}
		ch.Indices = append(ch.Indices, idx)
	}
	return ch
}
