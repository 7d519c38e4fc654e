package proof

import (
	"fmt"
	"math"
)

// SchemeMerkleSegment is the name of the default scheme.
const SchemeMerkleSegment = "merkle-segment"

// Params are a scheme's public parameters, sent by /new as "heartbeat".
type Params struct {
	Scheme             string `json:"scheme"`
	LeafSize           int    `json:"leaf_size"`
	LeavesPerChallenge int    `json:"leaves_per_challenge"`
}

// DefaultParams returns merkle-segment with 1024-byte leaves and 4 leaves
// per challenge.
func DefaultParams() Params {
	return Params{Scheme: SchemeMerkleSegment, LeafSize: 1024, LeavesPerChallenge: 4}
}

// Validate reports whether p names a known scheme with usable numbers:
// a leaf size in [1, MaxLeafSize] and 1 to MaxProofLeaves leaves per
// challenge.
func (p Params) Validate() error {
	switch {
	case p.Scheme != SchemeMerkleSegment:
		return fmt.Errorf("proof: unknown scheme %q", p.Scheme)
	case p.LeafSize < 1 || p.LeafSize > MaxLeafSize:
		return fmt.Errorf("proof: leaf size %d, want 1 to %d", p.LeafSize, MaxLeafSize)
	case p.LeavesPerChallenge < 1 || p.LeavesPerChallenge > MaxProofLeaves:
		return fmt.Errorf("proof: %d leaves per challenge, want 1 to %d", p.LeavesPerChallenge, MaxProofLeaves)
	}
	return nil
}

// Scheme is a proof-of-storage scheme as the node uses it: it issues a
// challenge from a fresh seed and checks the raw answer. The actors and the
// HTTP layer see only this, so another scheme can be added beside
// merkle-segment.
type Scheme interface {
	// Name returns the scheme's name, as in Params.Scheme.
	Name() string
	// Params returns the public parameters.
	Params() Params
	// NewChallenge derives a challenge for the chunk tag describes.
	NewChallenge(seed [32]byte, tag Tag) Challenge
	// Verify checks a raw answer; the error wraps ErrCorrupted if raw is
	// malformed and ErrInvalid if it is wrong.
	Verify(tag Tag, ch Challenge, raw []byte) error
}

// MerkleSegment returns the merkle-segment scheme with parameters p, which
// the caller should have validated. The leaf size of p is the one used to
// tag new chunks; Verify uses the leaf size recorded in each tag.
func MerkleSegment(p Params) Scheme { return merkleSegment{p} }

type merkleSegment struct{ p Params }

func (s merkleSegment) Name() string   { return SchemeMerkleSegment }
func (s merkleSegment) Params() Params { return s.p }

func (s merkleSegment) NewChallenge(seed [32]byte, tag Tag) Challenge {
	return NewChallenge(seed, tag.Leaves(), s.p.LeavesPerChallenge)
}

func (s merkleSegment) Verify(tag Tag, ch Challenge, raw []byte) error {
	a := arenas.Get().(*arena)
	defer a.release()
	p, err := decodeIn(raw, a)
	if err != nil {
		return err
	}
	return verifyIn(tag, ch, p, a)
}

// DetectionProbability returns the probability that a farmer which lost a
// fraction f of a chunk is caught within c challenges of k leaves each:
// 1 − (1 − f)^(k·c). (Leaves within a challenge are drawn without
// replacement, so this slightly underestimates detection.) With k = 4 and
// one challenge every 5 minutes:
//
//	lost f   1 challenge   1 hour (12)   1 day (288)
//	0.1 %       0.40 %        4.7 %         68.4 %
//	1 %         3.94 %       38.3 %         1 − 9.4·10⁻⁶
//	10 %       34.4 %        99.36 %        1 − 2·10⁻⁵³
//	50 %       93.75 %       1 − 3.6·10⁻¹⁵  1
func DetectionProbability(f float64, k int, c int) float64 {
	f = min(max(f, 0), 1)
	if k <= 0 || c <= 0 {
		return 0
	}
	return 1 - math.Pow(1-f, float64(k)*float64(c))
}
