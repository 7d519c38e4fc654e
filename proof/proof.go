package proof

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The two ways an answer can fail. ErrCorrupted means the bytes are not a
// well-formed proof at all; ErrInvalid means a well-formed proof does not
// answer the challenge for the tag. Errors returned by DecodeProof and
// Verify wrap one of them.
var (
	// ErrCorrupted: the proof is structurally malformed.
	ErrCorrupted = errors.New("proof corrupted")
	// ErrInvalid: the proof is well formed but wrong.
	ErrInvalid = errors.New("proof invalid")
)

// Proof is a farmer's answer to a challenge: one entry per challenged leaf.
//
// In JSON: {"leaves": [{"index": i, "data": "<base64>", "path": ["<base64>", ...]}]}.
type Proof struct {
	Leaves []LeafProof `json:"leaves"`
}

// LeafProof is one challenged leaf: its bytes, and the sibling hashes on
// the way from the leaf up to the root. A level where the node has no
// right sibling (it is promoted unchanged) contributes no hash.
type LeafProof struct {
	Index uint32 `json:"index"`
	Data  []byte `json:"data"`
	Path  []Hash `json:"path"`
}

// The wire form uses pointers so that missing fields and nulls are told
// apart from zero values and rejected.
type (
	wireProof struct {
		Leaves *[]wireLeaf `json:"leaves"`
	}
	wireLeaf struct {
		Index *uint32   `json:"index"`
		Data  *leafData `json:"data"`
		Path  *[]Hash   `json:"path"`
	}
)

// leafData is a leaf's bytes in canonical standard base64: padded, with
// zero padding bits and no line breaks (which base64 decoders otherwise
// skip), so that a leaf has exactly one encoding, as a hash has.
type leafData []byte

func (d *leafData) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "\r\n") {
		return errors.New("leaf data has a line break in its base64")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return fmt.Errorf("leaf data: %w", err)
	}
	*d = raw
	return nil
}

// DecodeProof parses the JSON of a proof. It is strict about structure and
// types and lenient about unknown fields. It returns an error wrapping
// ErrCorrupted if raw is not a JSON object, a field is missing, null or of
// the wrong type, base64 is bad, a path hash is not 32 bytes, or a limit is
// exceeded: more than MaxProofLeaves leaves, more than MaxPathLen hashes in
// a path, leaf data empty or longer than MaxLeafSize.
func DecodeProof(raw []byte) (Proof, error) { return decodeIn(raw, nil) }

// decodeIn is DecodeProof taking the fast path's memory from a, when a is
// not nil: the proof then lives only until a is reused.
func decodeIn(raw []byte, a *arena) (Proof, error) {
	if leaves, ok := decodeFastIn(raw, a); ok {
		var p Proof
		if a != nil {
			if a.proof == nil || cap(a.proof) < len(leaves) {
				a.proof = make([]LeafProof, max(len(leaves), 16))
			}
			p.Leaves = a.proof[:len(leaves)]
		} else {
			p.Leaves = make([]LeafProof, len(leaves))
		}
		for i, l := range leaves {
			if err := checkLeaf(i, l.data, l.path); err != nil {
				return Proof{}, err
			}
			p.Leaves[i] = LeafProof{Index: l.index, Data: l.data, Path: l.path}
		}
		return p, nil
	}
	return decodeSlow(raw)
}

// decodeSlow is DecodeProof through encoding/json, for every form of
// JSON, with its error messages.
func decodeSlow(raw []byte) (Proof, error) {
	if err := checkKeys(raw); err != nil {
		return Proof{}, fmt.Errorf("%w: %v", ErrCorrupted, err)
	}
	var w wireProof
	if err := json.Unmarshal(raw, &w); err != nil {
		return Proof{}, fmt.Errorf("%w: %v", ErrCorrupted, err)
	}
	if w.Leaves == nil {
		return Proof{}, fmt.Errorf("%w: leaves missing", ErrCorrupted)
	}
	if n := len(*w.Leaves); n > MaxProofLeaves {
		return Proof{}, fmt.Errorf("%w: %d leaves, want at most %d", ErrCorrupted, n, MaxProofLeaves)
	}
	p := Proof{Leaves: make([]LeafProof, len(*w.Leaves))}
	for i, l := range *w.Leaves {
		if l.Index == nil || l.Data == nil || l.Path == nil {
			return Proof{}, fmt.Errorf("%w: leaf %d needs index, data and path", ErrCorrupted, i)
		}
		if err := checkLeaf(i, *l.Data, *l.Path); err != nil {
			return Proof{}, err
		}
		p.Leaves[i] = LeafProof{Index: *l.Index, Data: *l.Data, Path: *l.Path}
	}
	return p, nil
}

// checkKeys rejects what encoding/json would quietly accept in a proof
// but another parser may read differently: invalid UTF-8; a proof or leaf
// object with one of its members twice (encoding/json keeps the last,
// others the first); and a member of a proof or leaf object that matches
// its field only case-insensitively ("LEAVES", or "leaveſ" with a long
// s), which encoding/json takes for the field. Members the scheme does
// not name are ignored wherever they are, and so is what they hold.
func checkKeys(raw []byte) error {
	if !utf8.Valid(raw) {
		return errors.New("not valid UTF-8")
	}
	// The objects whose members encoding/json binds: the proof, and the
	// leaves (objects directly in the proof's "leaves" array).
	const (
		other = iota
		proofObject
		leavesArray
		leafObject
	)
	fields := map[int][]string{proofObject: {"leaves"}, leafObject: {"index", "data", "path"}}
	type level struct {
		role  int
		delim json.Delim
		atKey bool   // an object's next token is a member name
		key   string // an object's current member
		seen  []string
	}
	var stack []level
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or not JSON: json.Unmarshal says why
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:top]
			if top > 0 && stack[top-1].delim == '{' {
				stack[top-1].atKey = true
			}
			continue
		}
		if top >= 0 && stack[top].delim == '{' && stack[top].atKey {
			l := &stack[top]
			l.atKey, l.key = false, tok.(string)
			for _, f := range fields[l.role] {
				switch {
				case l.key == f && slices.Contains(l.seen, f):
					return fmt.Errorf("member %q appears twice", f)
				case l.key == f:
					l.seen = append(l.seen, f)
				case strings.EqualFold(l.key, f):
					return fmt.Errorf("member %q is not %q", l.key, f)
				}
			}
			continue
		}
		// A value: in an object, the next token is a member name again.
		role := other
		if top >= 0 {
			switch p := &stack[top]; {
			case p.delim == '{':
				p.atKey = true
				if p.role == proofObject && p.key == "leaves" {
					role = leavesArray
				}
			case p.role == leavesArray:
				role = leafObject
			}
		} else {
			role = proofObject
		}
		if d, ok := tok.(json.Delim); ok {
			if (d == '[') != (role == leavesArray) || (d == '{') != (role == proofObject || role == leafObject) {
				role = other // not the shape encoding/json binds: it fails there, or ignores it
			}
			stack = append(stack, level{role: role, delim: d, atKey: d == '{'})
		}
	}
}

// checkLeaf applies DecodeProof's limits to leaf i.
func checkLeaf(i int, data []byte, path []Hash) error {
	switch {
	case len(data) == 0 || len(data) > MaxLeafSize:
		return fmt.Errorf("%w: leaf %d has %d bytes, want 1 to %d", ErrCorrupted, i, len(data), MaxLeafSize)
	case len(path) > MaxPathLen:
		return fmt.Errorf("%w: leaf %d path has %d hashes, want at most %d", ErrCorrupted, i, len(path), MaxPathLen)
	}
	return nil
}

// Verify checks that p answers ch for the chunk described by tag. It
// returns nil or an error wrapping ErrInvalid. A proof is accepted only if
// every challenged index is present exactly once and no other index is;
// each leaf's data has the length of that leaf (LeafSize, or the remainder
// for the last one); each path has exactly the length of the audit path
// for that index; and hashing each leaf up its path reaches tag.Root.
// A challenge without indices, or an invalid tag, accepts nothing.
//
// Verify never panics, and allocates only a hasher and a flag per
// challenged index.
// Its cost is k leaf hashes plus about k·log2(leaves) node hashes.
func Verify(tag Tag, ch Challenge, p Proof) error {
	return verifyIn(tag, ch, p, nil)
}

// verifyIn is Verify taking its hasher and flags from a, when a is not nil.
func verifyIn(tag Tag, ch Challenge, p Proof, a *arena) error {
	if err := tag.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(ch.Indices) == 0 {
		return fmt.Errorf("%w: challenge has no indices", ErrInvalid)
	}
	if len(p.Leaves) != len(ch.Indices) {
		return fmt.Errorf("%w: %d leaves, want %d", ErrInvalid, len(p.Leaves), len(ch.Indices))
	}
	n := tag.Leaves()
	var answered []bool
	var x *hasher
	if a != nil {
		if cap(a.answered) < len(ch.Indices) {
			a.answered = make([]bool, len(ch.Indices))
		}
		answered = a.answered[:len(ch.Indices)]
		clear(answered)
		x = a.hasher()
	} else {
		answered = make([]bool, len(ch.Indices))
		x = newHasher()
	}
	for i, l := range p.Leaves {
		idx := int64(l.Index)
		if idx >= n {
			return fmt.Errorf("%w: index %d out of range of %d leaves", ErrInvalid, idx, n)
		}
		j := slot(ch.Indices, answered, l.Index, i)
		if j < 0 {
			return fmt.Errorf("%w: index %d not challenged or repeated", ErrInvalid, idx)
		}
		answered[j] = true
		if want := tag.leafLen(idx); len(l.Data) != want {
			return fmt.Errorf("%w: leaf %d has %d bytes, want %d", ErrInvalid, idx, len(l.Data), want)
		}
		if want := pathLen(uint64(idx), uint64(n)); len(l.Path) != want {
			return fmt.Errorf("%w: leaf %d path has %d hashes, want %d", ErrInvalid, idx, len(l.Path), want)
		}
		if !reachesRoot(x.leaf(l.Data), uint64(idx), uint64(n), l.Path, &tag.Root) {
			return fmt.Errorf("%w: leaf %d does not hash up to the root", ErrInvalid, idx)
		}
	}
	return nil
}

// slot returns the position of an unanswered challenged index equal to
// idx, trying position hint first (proofs usually follow the challenge's
// order), or -1.
func slot(indices []uint32, answered []bool, idx uint32, hint int) int {
	if indices[hint] == idx && !answered[hint] {
		return hint
	}
	for j, c := range indices {
		if c == idx && !answered[j] {
			return j
		}
	}
	return -1
}

// pathLen returns the length of the audit path of leaf idx in a tree of n
// leaves: the number of levels at which its ancestor has a sibling.
func pathLen(idx, n uint64) int {
	l := 0
	for ; n > 1; n = (n + 1) / 2 {
		if idx^1 < n {
			l++
		}
		idx /= 2
	}
	return l
}

// reachesRoot walks the audit path as RFC 9162 section 2.1.3.2 does: fn is
// the node's index at the current level and sn the last index there; when
// fn is the last node and even, it was promoted, so levels are skipped
// until it becomes a right child or reaches the left edge.
func reachesRoot(r Hash, idx, n uint64, path []Hash, root *Hash) bool {
	fn, sn := idx, n-1
	for i := range path {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = node(&path[i], &r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = node(&r, &path[i])
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == *root
}
