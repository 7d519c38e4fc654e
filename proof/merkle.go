package proof

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
)

// Limits of the merkle-segment scheme. They bound what a proof may carry,
// so that decoding and verifying cost at most a constant times the input.
const (
	// MaxLeafSize is the largest leaf, and so the largest leaf data a
	// proof may carry.
	MaxLeafSize = 1 << 20
	// MaxLeaves is the largest number of leaves in a chunk: leaf indices
	// are uint32.
	MaxLeaves = 1 << 32
	// MaxProofLeaves is the largest number of leaves one challenge may
	// name, and one proof may carry.
	MaxProofLeaves = 1024
	// MaxPathLen is the largest number of hashes a proof's path may carry.
	MaxPathLen = 64
)

// Hash is a SHA-256 digest: a leaf hash, an inner node or a root. In JSON
// it is standard padded base64 of exactly 32 bytes.
type Hash [sha256.Size]byte

// MarshalJSON encodes h as a base64 string.
func (h Hash) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(h[:]))
}

// UnmarshalJSON decodes a base64 string of exactly 32 bytes. Unlike most
// decoders it rejects null: a hash is never optional.
func (h *Hash) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return errors.New("hash is null")
	}
	// The usual form, a quoted run of base64 characters, decodes in place;
	// only a string with escapes goes through the JSON string decoder.
	const n = 44 // base64 characters of 32 bytes
	if len(b) == n+2 && b[0] == '"' && b[n+1] == '"' && !slices.Contains(b[1:n+1], '\\') {
		var raw [33]byte // DecodedLen(44): room for the decoder's last quantum
		m, err := base64.StdEncoding.Strict().Decode(raw[:], b[1:n+1])
		if err != nil {
			return fmt.Errorf("hash: %w", err)
		}
		if m != len(h) {
			return fmt.Errorf("hash is %d bytes, want %d", m, len(h))
		}
		copy(h[:], raw[:m])
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if want := base64.StdEncoding.EncodedLen(len(h)); len(s) != want {
		return fmt.Errorf("hash is %d base64 characters, want %d", len(s), want)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	if len(raw) != len(h) {
		return fmt.Errorf("hash is %d bytes, want %d", len(raw), len(h))
	}
	copy(h[:], raw)
	return nil
}

// String returns h in base64, as it appears in JSON.
func (h Hash) String() string { return base64.StdEncoding.EncodeToString(h[:]) }

// Tag is what the node keeps about a chunk's content, and sends with the
// contract so that a farmer can check the bytes it received.
type Tag struct {
	Root     Hash  `json:"root"`
	LeafSize int   `json:"leaf_size"`
	Size     int64 `json:"size"`
}

// Leaves returns the number of leaves, ceil(Size/LeafSize), or 0 if the
// tag is not valid.
func (t Tag) Leaves() int64 { return leafCount(t.Size, t.LeafSize) }

// Validate reports whether the tag describes a chunk this package can
// prove: a positive size, a leaf size in [1, MaxLeafSize] and at most
// MaxLeaves leaves.
func (t Tag) Validate() error { return checkShape(t.Size, t.LeafSize) }

// leafLen returns the length of leaf i of the chunk: leafSize, or what
// remains for the last leaf.
func (t Tag) leafLen(i int64) int {
	if last := t.Leaves() - 1; i == last {
		return int(t.Size - last*int64(t.LeafSize))
	}
	return t.LeafSize
}

func leafCount(size int64, leafSize int) int64 {
	if size <= 0 || leafSize <= 0 {
		return 0
	}
	return (size-1)/int64(leafSize) + 1
}

func checkShape(size int64, leafSize int) error {
	switch {
	case size <= 0:
		return fmt.Errorf("proof: chunk size %d, want > 0", size)
	case leafSize <= 0 || leafSize > MaxLeafSize:
		return fmt.Errorf("proof: leaf size %d, want 1 to %d", leafSize, MaxLeafSize)
	case leafCount(size, leafSize) > MaxLeaves:
		return fmt.Errorf("proof: %d leaves, want at most %d", leafCount(size, leafSize), int64(MaxLeaves))
	}
	return nil
}

// hasher hashes leaves and inner nodes without allocating per call.
type hasher struct {
	h   hash.Hash
	sum []byte
}

func newHasher() *hasher {
	return &hasher{h: sha256.New(), sum: make([]byte, 0, sha256.Size)}
}

var leafPrefix = []byte{0x00}

// leaf returns SHA-256(0x00 ‖ data).
func (x *hasher) leaf(data []byte) Hash {
	x.h.Reset()
	x.h.Write(leafPrefix)
	x.h.Write(data)
	return Hash(x.h.Sum(x.sum[:0]))
}

// node returns SHA-256(0x01 ‖ left ‖ right).
func node(left, right *Hash) Hash {
	var b [1 + 2*sha256.Size]byte
	b[0] = 0x01
	copy(b[1:], left[:])
	copy(b[1+sha256.Size:], right[:])
	return sha256.Sum256(b[:])
}

// readLeaves reads exactly size bytes from r and calls fn with each leaf
// in order. It reads in batches of many leaves, never past size.
func readLeaves(r io.Reader, size int64, leafSize int, fn func(leaf []byte)) error {
	batch := max(1, 64<<10/leafSize) * leafSize
	buf := make([]byte, min(int64(batch), size))
	for left := size; left > 0; {
		b := buf[:min(int64(len(buf)), left)]
		if _, err := io.ReadFull(r, b); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("proof: reading chunk at %d of %d bytes: %w", size-left, size, err)
		}
		left -= int64(len(b))
		for len(b) > 0 {
			n := min(len(b), leafSize)
			fn(b[:n])
			b = b[n:]
		}
	}
	return nil
}

// Encode computes the tag of a chunk by reading exactly size bytes from r.
// It keeps one batch of leaves and a stack of at most 33 subtree roots, so
// it can tag chunks of any size. It fails if r ends early.
func Encode(r io.Reader, size int64, leafSize int) (Tag, error) {
	if err := checkShape(size, leafSize); err != nil {
		return Tag{}, err
	}
	// stack holds the roots of complete subtrees of strictly decreasing
	// height; pushing a leaf merges equal heights like a binary counter.
	type subtree struct {
		root   Hash
		height int
	}
	var stack []subtree
	x := newHasher()
	err := readLeaves(r, size, leafSize, func(leaf []byte) {
		s := subtree{root: x.leaf(leaf)}
		for len(stack) > 0 && stack[len(stack)-1].height == s.height {
			top := &stack[len(stack)-1]
			s = subtree{root: node(&top.root, &s.root), height: s.height + 1}
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, s)
	})
	if err != nil {
		return Tag{}, err
	}
	// Fold from the right: the smaller subtrees were promoted to meet the
	// larger ones on their left, which is the RFC 6962 shape.
	root := stack[len(stack)-1].root
	for i := len(stack) - 2; i >= 0; i-- {
		root = node(&stack[i].root, &root)
	}
	return Tag{Root: root, LeafSize: leafSize, Size: size}, nil
}

// Tree is the whole Merkle tree of a chunk, every level kept, as a farmer
// needs it to answer challenges. It takes 64 bytes per leaf.
type Tree struct {
	tag    Tag
	levels [][]Hash // levels[0] are the leaf hashes; the last level is the root
}

// BuildTree reads the chunk of size bytes from r and builds its tree.
func BuildTree(r io.ReaderAt, size int64, leafSize int) (*Tree, error) {
	if err := checkShape(size, leafSize); err != nil {
		return nil, err
	}
	leaves := make([]Hash, 0, leafCount(size, leafSize))
	x := newHasher()
	err := readLeaves(io.NewSectionReader(r, 0, size), size, leafSize, func(leaf []byte) {
		leaves = append(leaves, x.leaf(leaf))
	})
	if err != nil {
		return nil, err
	}
	levels := [][]Hash{leaves}
	for level := leaves; len(level) > 1; {
		next := make([]Hash, 0, (len(level)+1)/2)
		for i := 0; i+1 < len(level); i += 2 {
			next = append(next, node(&level[i], &level[i+1]))
		}
		if len(level)%2 == 1 {
			next = append(next, level[len(level)-1]) // promoted unchanged
		}
		levels = append(levels, next)
		level = next
	}
	t := &Tree{levels: levels, tag: Tag{LeafSize: leafSize, Size: size}}
	t.tag.Root = levels[len(levels)-1][0]
	return t, nil
}

// Root returns the root hash of the tree.
func (t *Tree) Root() Hash { return t.tag.Root }

// Tag returns the tag of the chunk the tree was built from.
func (t *Tree) Tag() Tag { return t.tag }

// Prove answers the challenge: for each index, in the challenge's order,
// the leaf's bytes read from data (which must be the chunk the tree was
// built from) and its audit path. It fails if an index is out of range, a
// read fails, or the bytes read no longer match the tree.
func (t *Tree) Prove(data io.ReaderAt, ch Challenge) (Proof, error) {
	n := t.tag.Leaves()
	p := Proof{Leaves: make([]LeafProof, 0, len(ch.Indices))}
	x := newHasher()
	for _, idx := range ch.Indices {
		if int64(idx) >= n {
			return Proof{}, fmt.Errorf("proof: index %d out of range of %d leaves", idx, n)
		}
		off := int64(idx) * int64(t.tag.LeafSize)
		leaf := make([]byte, t.tag.leafLen(int64(idx)))
		if m, err := data.ReadAt(leaf, off); m < len(leaf) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Proof{}, fmt.Errorf("proof: reading leaf %d: %w", idx, err)
		}
		if x.leaf(leaf) != t.levels[0][idx] {
			return Proof{}, fmt.Errorf("proof: leaf %d does not match the tree", idx)
		}
		path := make([]Hash, 0, len(t.levels)-1)
		i := int(idx)
		for _, level := range t.levels[:len(t.levels)-1] {
			if sib := i ^ 1; sib < len(level) {
				path = append(path, level[sib])
			}
			i /= 2
		}
		p.Leaves = append(p.Leaves, LeafProof{Index: idx, Data: leaf, Path: path})
	}
	return p, nil
}
