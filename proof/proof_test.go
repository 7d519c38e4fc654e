package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// An independent, naive RFC 6962 implementation to check the tree against:
// MTH splits at the largest power of two below n, PATH follows it.

func naiveLeafHash(leaf []byte) Hash {
	return sha256.Sum256(append([]byte{0x00}, leaf...))
}

func naiveSplit(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

func naiveRoot(leaves [][]byte) Hash {
	if len(leaves) == 1 {
		return naiveLeafHash(leaves[0])
	}
	k := naiveSplit(len(leaves))
	l, r := naiveRoot(leaves[:k]), naiveRoot(leaves[k:])
	return sha256.Sum256(slices.Concat([]byte{0x01}, l[:], r[:]))
}

func naivePath(m int, leaves [][]byte) []Hash {
	if len(leaves) == 1 {
		return nil
	}
	k := naiveSplit(len(leaves))
	if m < k {
		return append(naivePath(m, leaves[:k]), naiveRoot(leaves[k:]))
	}
	return append(naivePath(m-k, leaves[k:]), naiveRoot(leaves[:k]))
}

func split(data []byte, leafSize int) [][]byte {
	var leaves [][]byte
	for len(data) > 0 {
		n := min(len(data), leafSize)
		leaves = append(leaves, data[:n])
		data = data[n:]
	}
	return leaves
}

// chunk returns n leaves of seeded bytes; the last one is short by cut
// bytes.
func chunk(n, leafSize, cut int) []byte {
	data := make([]byte, n*leafSize-cut)
	NewSeeded(fmt.Sprintf("chunk-%d-%d-%d", n, leafSize, cut), int64(len(data))).ReadAt(data, 0)
	return data
}

func mustTree(t testing.TB, data []byte, leafSize int) *Tree {
	t.Helper()
	tree, err := BuildTree(bytes.NewReader(data), int64(len(data)), leafSize)
	if err != nil {
		t.Fatalf("BuildTree: %v", err)
	}
	return tree
}

func mustProve(t testing.TB, tree *Tree, data []byte, ch Challenge) Proof {
	t.Helper()
	p, err := tree.Prove(bytes.NewReader(data), ch)
	if err != nil {
		t.Fatalf("Prove(%v): %v", ch.Indices, err)
	}
	return p
}

func TestRoots(t *testing.T) {
	const leafSize = 16
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 31, 33} {
		for _, cut := range []int{0, 1, leafSize - 1} {
			data := chunk(n, leafSize, cut)
			want := naiveRoot(split(data, leafSize))
			tree := mustTree(t, data, leafSize)
			if got := tree.Root(); got != want {
				t.Errorf("n=%d cut=%d: BuildTree root got %v, want %v", n, cut, got, want)
			}
			tag, err := Encode(bytes.NewReader(data), int64(len(data)), leafSize)
			if err != nil {
				t.Fatalf("n=%d cut=%d: Encode: %v", n, cut, err)
			}
			if wantTag := (Tag{Root: want, LeafSize: leafSize, Size: int64(len(data))}); tag != wantTag {
				t.Errorf("n=%d cut=%d: Encode got %+v, want %+v", n, cut, tag, wantTag)
			}
			if got := tag.Leaves(); got != int64(n) {
				t.Errorf("n=%d cut=%d: Leaves got %d, want %d", n, cut, got, n)
			}
		}
	}
}

func TestShortLastLeaf(t *testing.T) {
	data := []byte("0123456789abcdef0123456789abcdefxyz") // leaves of 16, 16 and 3
	l0, l1, l2 := naiveLeafHash(data[:16]), naiveLeafHash(data[16:32]), naiveLeafHash([]byte("xyz"))
	left := sha256.Sum256(slices.Concat([]byte{1}, l0[:], l1[:]))
	want := Hash(sha256.Sum256(slices.Concat([]byte{1}, left[:], l2[:])))
	if got := mustTree(t, data, 16).Root(); got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestEncodeMatchesBuildTreeLarge(t *testing.T) {
	s := NewSeeded("large", 3<<20+123)
	tag, err := Encode(s.NewReader(), s.Size(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := BuildTree(s, s.Size(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if tag != tree.Tag() {
		t.Errorf("Encode got %+v, BuildTree %+v", tag, tree.Tag())
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		size     int64
		leafSize int
	}{
		{"short read", make([]byte, 99), 100, 16},
		{"empty data", nil, 1, 16},
		{"zero size", nil, 0, 16},
		{"negative size", nil, -1, 16},
		{"zero leaf size", make([]byte, 10), 10, 0},
		{"leaf too large", make([]byte, 10), 10, MaxLeafSize + 1},
		{"too many leaves", nil, MaxLeaves + 1, 1},
	}
	for _, tt := range tests {
		if _, err := Encode(bytes.NewReader(tt.data), tt.size, tt.leafSize); err == nil {
			t.Errorf("%s: Encode got nil error, want an error", tt.name)
		}
		if _, err := BuildTree(bytes.NewReader(tt.data), tt.size, tt.leafSize); err == nil {
			t.Errorf("%s: BuildTree got nil error, want an error", tt.name)
		}
	}
}

func TestProveVerifyEveryIndex(t *testing.T) {
	const leafSize = 16
	for n := 1; n <= 40; n++ {
		for _, cut := range []int{0, 7} {
			data := chunk(n, leafSize, cut)
			leaves := split(data, leafSize)
			tree := mustTree(t, data, leafSize)
			tag := tree.Tag()
			all := Challenge{}
			for i := range n {
				ch := Challenge{Indices: []uint32{uint32(i)}}
				p := mustProve(t, tree, data, ch)
				if got, want := p.Leaves[0].Path, naivePath(i, leaves); !slices.Equal(got, want) {
					t.Errorf("n=%d cut=%d i=%d: path got %v, want %v", n, cut, i, got, want)
				}
				if err := Verify(tag, ch, p); err != nil {
					t.Errorf("n=%d cut=%d i=%d: Verify got %v, want nil", n, cut, i, err)
				}
				all.Indices = append(all.Indices, uint32(n-1-i))
			}
			if err := Verify(tag, all, mustProve(t, tree, data, all)); err != nil {
				t.Errorf("n=%d cut=%d all leaves: Verify got %v, want nil", n, cut, err)
			}
		}
	}
}

func cloneProof(p Proof) Proof {
	q := Proof{Leaves: slices.Clone(p.Leaves)}
	for i := range q.Leaves {
		q.Leaves[i].Data = slices.Clone(q.Leaves[i].Data)
		q.Leaves[i].Path = slices.Clone(q.Leaves[i].Path)
	}
	return q
}

func TestVerifyRejects(t *testing.T) {
	const leafSize, n = 16, 13
	data := chunk(n, leafSize, 11) // the last leaf has 5 bytes
	tree := mustTree(t, data, leafSize)
	ch := Challenge{Indices: []uint32{2, 12, 7, 0}}
	genuine := mustProve(t, tree, data, ch)
	other := mustProve(t, tree, data, Challenge{Indices: []uint32{5}}).Leaves[0]

	tests := []struct {
		name   string
		mutate func(*Tag, *Challenge, *Proof)
	}{
		{"duplicated index", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[1] = p.Leaves[0] }},
		{"missing index", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves = p.Leaves[:3] }},
		{"extra index", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves = append(p.Leaves, other) }},
		{"unchallenged index", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[3] = other }},
		{"out-of-range index", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[0].Index = n }},
		{"far out-of-range index", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[0].Index = math.MaxUint32 }},
		{"bit flipped in data", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[0].Data[3] ^= 0x10 }},
		{"data of another leaf", func(_ *Tag, _ *Challenge, p *Proof) {
			p.Leaves[0].Data, p.Leaves[2].Data = p.Leaves[2].Data, p.Leaves[0].Data
		}},
		{"indices swapped", func(_ *Tag, _ *Challenge, p *Proof) {
			p.Leaves[0].Index, p.Leaves[2].Index = p.Leaves[2].Index, p.Leaves[0].Index
		}},
		{"path too short", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[2].Path = p.Leaves[2].Path[:3] }},
		{"path too long", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[2].Path = append(p.Leaves[2].Path, Hash{}) }},
		{"path empty", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[0].Path = nil }},
		{"tampered path hash", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[2].Path[1][0] ^= 1 }},
		{"path hashes swapped", func(_ *Tag, _ *Challenge, p *Proof) {
			path := p.Leaves[2].Path
			path[0], path[1] = path[1], path[0]
		}},
		{"wrong root", func(tag *Tag, _ *Challenge, _ *Proof) { tag.Root[31] ^= 1 }},
		{"truncated last leaf", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[1].Data = p.Leaves[1].Data[:4] }},
		{"padded last leaf", func(_ *Tag, _ *Challenge, p *Proof) {
			p.Leaves[1].Data = append(p.Leaves[1].Data, make([]byte, leafSize-5)...)
		}},
		{"truncated full leaf", func(_ *Tag, _ *Challenge, p *Proof) { p.Leaves[3].Data = p.Leaves[3].Data[:15] }},
		{"tag size grown", func(tag *Tag, _ *Challenge, _ *Proof) { tag.Size++ }},
		{"tag leaf size changed", func(tag *Tag, _ *Challenge, _ *Proof) { tag.LeafSize = 8 }},
		{"invalid tag", func(tag *Tag, _ *Challenge, _ *Proof) { tag.LeafSize = 0 }},
		{"empty proof", func(_ *Tag, _ *Challenge, p *Proof) { *p = Proof{} }},
		{"empty challenge", func(_ *Tag, ch *Challenge, p *Proof) { *ch, *p = Challenge{}, Proof{} }},
	}
	for _, tt := range tests {
		tag, c, p := tree.Tag(), Challenge{Indices: slices.Clone(ch.Indices)}, cloneProof(genuine)
		tt.mutate(&tag, &c, &p)
		if err := Verify(tag, c, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tt.name, err)
		}
	}
	// The untouched proof, in any order, is accepted.
	p := cloneProof(genuine)
	slices.Reverse(p.Leaves)
	if err := Verify(tree.Tag(), ch, p); err != nil {
		t.Errorf("reordered: got %v, want nil", err)
	}
}

func TestProveErrors(t *testing.T) {
	data := chunk(4, 16, 0)
	tree := mustTree(t, data, 16)
	if _, err := tree.Prove(bytes.NewReader(data), Challenge{Indices: []uint32{4}}); err == nil {
		t.Errorf("out of range: got nil error, want an error")
	}
	if _, err := tree.Prove(bytes.NewReader(data[:50]), Challenge{Indices: []uint32{3}}); err == nil {
		t.Errorf("short data: got nil error, want an error")
	}
	changed := slices.Clone(data)
	changed[20] ^= 1
	if _, err := tree.Prove(bytes.NewReader(changed), Challenge{Indices: []uint32{1}}); err == nil {
		t.Errorf("changed data: got nil error, want an error")
	}
}

func hashB64(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }

func TestDecodeProofRejects(t *testing.T) {
	leaf := func(index, data, path string) string {
		return `{"leaves":[{"index":` + index + `,"data":` + data + `,"path":` + path + `}]}`
	}
	h := `"` + hashB64(32) + `"`
	path65 := "[" + strings.Repeat(h+",", 64) + h + "]"
	entry := `{"index":0,"data":"AA==","path":[]}`
	leaves1025 := `{"leaves":[` + strings.Repeat(entry+",", 1024) + entry + `]}`
	leaves1024 := `{"leaves":[` + strings.Repeat(entry+",", 1023) + entry + `]}`
	big := `"` + base64.StdEncoding.EncodeToString(make([]byte, MaxLeafSize+1)) + `"`
	tests := []struct{ name, raw string }{
		{"empty input", ``},
		{"not json", `leaves`},
		{"null", `null`},
		{"array", `[]`},
		{"string", `"x"`},
		{"number", `42`},
		{"empty object", `{}`},
		{"leaves null", `{"leaves":null}`},
		{"leaves object", `{"leaves":{}}`},
		{"leaf null", `{"leaves":[null]}`},
		{"leaf empty object", `{"leaves":[{}]}`},
		{"trailing garbage", `{"leaves":[]} x`},
		{"bad base64 data", leaf("0", `"!!!!"`, "[]")},
		{"unpadded data", leaf("0", `"AA"`, "[]")},
		{"empty data", leaf("0", `""`, "[]")},
		{"data null", leaf("0", `null`, "[]")},
		{"data number", leaf("0", `7`, "[]")},
		{"data too long", leaf("0", big, "[]")},
		{"index negative", leaf("-1", `"AA=="`, "[]")},
		{"index string", leaf(`"1"`, `"AA=="`, "[]")},
		{"index fraction", leaf("1.5", `"AA=="`, "[]")},
		{"index too large", leaf("4294967296", `"AA=="`, "[]")},
		{"index null", leaf("null", `"AA=="`, "[]")},
		{"path null", leaf("0", `"AA=="`, "null")},
		{"path string", leaf("0", `"AA=="`, h)},
		{"31-byte hash", leaf("0", `"AA=="`, `["`+hashB64(31)+`"]`)},
		{"33-byte hash", leaf("0", `"AA=="`, `["`+hashB64(33)+`"]`)},
		{"unpadded hash", leaf("0", `"AA=="`, `["`+strings.TrimRight(hashB64(32), "=")+`"]`)},
		{"bad base64 hash", leaf("0", `"AA=="`, `["`+strings.Repeat("!", 44)+`"]`)},
		{"null hash", leaf("0", `"AA=="`, `[null]`)},
		{"numeric hash", leaf("0", `"AA=="`, `[1]`)},
		{"65-element path", leaf("0", `"AA=="`, path65)},
		{"1025 leaves", leaves1025},
		// One proof, one reading: forms that encoding/json accepts but a
		// parser taking the first of two members, or matching names
		// exactly, would read differently.
		{"index twice", `{"leaves":[{"index":0,"index":1,"data":"AA==","path":[]}]}`},
		{"data twice", `{"leaves":[{"index":0,"data":"AQ==","data":"AA==","path":[]}]}`},
		{"leaves twice", `{"leaves":[],"leaves":[` + entry + `]}`},
		{"upper-case member", `{"LEAVES":[]}`},
		{"mixed-case leaf member", `{"leaves":[{"Index":0,"data":"AA==","path":[]}]}`},
		{"member with a long s", `{"leave\u017f":[]}`},
		{"invalid UTF-8", "{\"x\":\"\xff\",\"leaves\":[]}"},
		// Leaf data has one encoding, as hashes do.
		{"data with padding bits set", leaf("0", `"AB=="`, "[]")},
		{"data with a line break", leaf("0", `"A\nA=="`, "[]")},
		// Raw line breaks are not JSON, and the base64 decoder skips them.
		{"data with raw line breaks", leaf("0", "\"AAAA\n\r\n\nAAAA\"", "[]")},
		{"hash with raw line breaks", leaf("0", `"AA=="`, "[\""+hashB64(30)+"\n\n\n\n\"]")},
	}
	for _, tt := range tests {
		if _, err := DecodeProof([]byte(tt.raw)); !errors.Is(err, ErrCorrupted) {
			t.Errorf("%s: got %v, want ErrCorrupted", tt.name, err)
		}
	}
	// At the limits, and with unknown fields, decoding succeeds.
	ok := []struct{ name, raw string }{
		{"64-element path", leaf("0", `"AA=="`, path65[:len(path65)-len(h)-2]+"]")},
		{"1024 leaves", leaves1024},
		{"unknown fields", `{"v":2,"leaves":[{"index":3,"data":"AA==","path":[],"x":null}]}`},
		{"no leaves", `{"leaves":[]}`},
		// Unknown members are ignored, whatever their names and content.
		{"unknown member twice", `{"x":1,"x":2,"leaves":[]}`},
		{"unknown member named like a leaf field", `{"Path":1,"leaves":[]}`},
		{"unknown object with field-like names", `{"leaves":[],"meta":{"Data":1,"a":1,"a":2}}`},
		{"unknown member of a leaf holding a proof-like object", `{"leaves":[{"index":0,"data":"AA==","path":[],"x":{"leaves":1,"LEAVES":2}}]}`},
	}
	for _, tt := range ok {
		if _, err := DecodeProof([]byte(tt.raw)); err != nil {
			t.Errorf("%s: got %v, want nil", tt.name, err)
		}
	}
}

func TestProofJSONRoundTrip(t *testing.T) {
	data := chunk(9, 16, 3)
	tree := mustTree(t, data, 16)
	ch := Challenge{Indices: []uint32{8, 0, 4}}
	p := mustProve(t, tree, data, ch)
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProof(raw)
	if err != nil {
		t.Fatalf("DecodeProof(%s): %v", raw, err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("got %+v, want %+v", got, p)
	}
	s := MerkleSegment(DefaultParams())
	if err := s.Verify(tree.Tag(), ch, raw); err != nil {
		t.Errorf("Scheme.Verify: got %v, want nil", err)
	}
	if err := s.Verify(tree.Tag(), ch, raw[:len(raw)-1]); !errors.Is(err, ErrCorrupted) {
		t.Errorf("Scheme.Verify truncated: got %v, want ErrCorrupted", err)
	}
	if err := s.Verify(tree.Tag(), Challenge{Indices: []uint32{8, 0, 5}}, raw); !errors.Is(err, ErrInvalid) {
		t.Errorf("Scheme.Verify other challenge: got %v, want ErrInvalid", err)
	}
}

func TestNewChallenge(t *testing.T) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(i)
	}
	tests := []struct {
		leaves int64
		k      int
		want   []uint32 // nil: only check the properties
	}{
		// Known answers, computed with Python's hashlib from the documented
		// derivation.
		{1000, 4, []uint32{379, 776, 764, 231}},
		{5, 5, []uint32{4, 1, 0, 3, 2}},
		{MaxLeaves, 4, []uint32{1387719427, 114549552, 3385549364, 2907160551}},
		{1, 4, []uint32{0}},
		{3, 4, nil},
		{1024, 1024, nil},
		{1 << 20, 1, nil},
		{0, 4, []uint32{}},
		{MaxLeaves + 1, 4, []uint32{}},
		{10, 0, []uint32{}},
	}
	for _, tt := range tests {
		ch := NewChallenge(seed, tt.leaves, tt.k)
		if ch.Seed != seed {
			t.Errorf("leaves=%d k=%d: seed got %x, want %x", tt.leaves, tt.k, ch.Seed, seed)
		}
		if tt.want != nil && !slices.Equal(ch.Indices, tt.want) {
			t.Errorf("leaves=%d k=%d: got %v, want %v", tt.leaves, tt.k, ch.Indices, tt.want)
		}
		want := 0
		if tt.leaves >= 1 && tt.leaves <= MaxLeaves {
			want = int(min(int64(tt.k), tt.leaves))
		}
		if len(ch.Indices) != want {
			t.Errorf("leaves=%d k=%d: got %d indices, want %d", tt.leaves, tt.k, len(ch.Indices), want)
		}
		seen := map[uint32]bool{}
		for _, i := range ch.Indices {
			if int64(i) >= tt.leaves || seen[i] {
				t.Errorf("leaves=%d k=%d: index %d repeated or out of range in %v", tt.leaves, tt.k, i, ch.Indices)
			}
			seen[i] = true
		}
		if again := NewChallenge(seed, tt.leaves, tt.k); !slices.Equal(again.Indices, ch.Indices) {
			t.Errorf("leaves=%d k=%d: not deterministic: got %v, want %v", tt.leaves, tt.k, again.Indices, ch.Indices)
		}
	}
	seed[0] ^= 1
	if got := NewChallenge(seed, 1000, 4).Indices; slices.Equal(got, tests[0].want) {
		t.Errorf("another seed: got the same indices %v", got)
	}
}

func TestChallengeJSON(t *testing.T) {
	ch := Challenge{Indices: []uint32{3, 1}}
	ch.Seed[0], ch.Seed[31] = 0xfb, 0xff
	raw, err := json.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"seed":"+wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8=","indices":[3,1]}`; string(raw) != want {
		t.Errorf("got %s, want %s", raw, want)
	}
	var got Challenge
	if err := json.Unmarshal(raw, &got); err != nil || !reflect.DeepEqual(got, ch) {
		t.Errorf("got %+v, %v, want %+v, nil", got, err, ch)
	}
	if raw, _ := json.Marshal(Challenge{}); !strings.Contains(string(raw), `"indices":[]`) {
		t.Errorf("empty: got %s, want indices []", raw)
	}
	for _, bad := range []string{
		`{}`,
		`{"seed":"` + hashB64(32) + `"}`,
		`{"indices":[1]}`,
		`{"seed":"` + hashB64(31) + `","indices":[1]}`,
		`{"seed":null,"indices":[1]}`,
		`{"seed":"` + hashB64(32) + `","indices":null}`,
		`{"seed":"` + hashB64(32) + `","indices":[-1]}`,
	} {
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%s: got nil error, want an error", bad)
		}
	}
}

func TestTagJSON(t *testing.T) {
	tag := Tag{LeafSize: 1024, Size: 5000}
	tag.Root[0] = 1
	raw, err := json.Marshal(tag)
	if err != nil {
		t.Fatal(err)
	}
	var got Tag
	if err := json.Unmarshal(raw, &got); err != nil || got != tag {
		t.Errorf("got %+v, %v, want %+v, nil", got, err, tag)
	}
	if got.Leaves() != 5 {
		t.Errorf("Leaves: got %d, want 5", got.Leaves())
	}
}

func TestParams(t *testing.T) {
	p := DefaultParams()
	if want := (Params{Scheme: "merkle-segment", LeafSize: 1024, LeavesPerChallenge: 4}); p != want {
		t.Errorf("DefaultParams: got %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("DefaultParams.Validate: got %v, want nil", err)
	}
	raw, _ := json.Marshal(p)
	if want := `{"scheme":"merkle-segment","leaf_size":1024,"leaves_per_challenge":4}`; string(raw) != want {
		t.Errorf("JSON: got %s, want %s", raw, want)
	}
	for _, bad := range []Params{
		{Scheme: "swizzle", LeafSize: 1024, LeavesPerChallenge: 4},
		{Scheme: "merkle-segment", LeafSize: 0, LeavesPerChallenge: 4},
		{Scheme: "merkle-segment", LeafSize: MaxLeafSize + 1, LeavesPerChallenge: 4},
		{Scheme: "merkle-segment", LeafSize: 1024, LeavesPerChallenge: 0},
		{Scheme: "merkle-segment", LeafSize: 1024, LeavesPerChallenge: MaxProofLeaves + 1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: got nil error, want an error", bad)
		}
	}
	s := MerkleSegment(p)
	if s.Name() != "merkle-segment" || s.Params() != p {
		t.Errorf("scheme: got %s %+v, want merkle-segment %+v", s.Name(), s.Params(), p)
	}
	ch := s.NewChallenge([32]byte{1}, Tag{LeafSize: 1024, Size: 1 << 20})
	if len(ch.Indices) != 4 {
		t.Errorf("scheme challenge: got %d indices, want 4", len(ch.Indices))
	}
}

func TestDetectionProbability(t *testing.T) {
	tests := []struct {
		f    float64
		k, c int
		want float64
	}{
		{0.5, 1, 1, 0.5},
		{0.5, 4, 1, 1 - 1.0/16},
		{0.01, 4, 12, 1 - math.Pow(0.99, 48)},
		{0, 4, 100, 0},
		{1, 4, 1, 1},
		{0.1, 0, 5, 0},
		{-1, 4, 1, 0},
		{2, 4, 1, 1},
	}
	for _, tt := range tests {
		if got := DetectionProbability(tt.f, tt.k, tt.c); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("f=%g k=%d c=%d: got %g, want %g", tt.f, tt.k, tt.c, got, tt.want)
		}
	}
}

func FuzzDecodeProof(f *testing.F) {
	data := chunk(6, 8, 3)
	tree := mustTree(f, data, 8)
	valid, _ := json.Marshal(mustProve(f, tree, data, Challenge{Indices: []uint32{5, 0, 2}}))
	for _, s := range []string{
		string(valid), `{"leaves":[]}`, `null`, `{}`, `[]`, `{"leaves":[null]}`,
		`{"leaves":[{"index":0,"data":"AA==","path":[]}]}`,
		`{"leaves":[{"index":0,"data":"!!","path":[]}]}`,
		`{"leaves":[{"index":0,"data":"AA==","path":["` + hashB64(31) + `"]}]}`,
		`{"leaves":[{"index":1e3,"data":"AA==","path":[]}]}`,
		`{"Leaves":[{"INDEX":1,"data":"AA==","path":[]}], "x":{}}`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		" {\n \"leaves\" : [ { \"path\" : [ ] , \"data\" : \"AA==\" , \"index\" : 7 } ] } \t",
		`{"leaves":[{"index":01,"data":"AA==","path":[]}]}`,
		`{"leaves":[{"index":4294967296,"data":"AA==","path":[]}]}`,
		`{"leaves":[{"index":1,"index":2,"data":"AA==","path":[]}]}`,
		`{"leaves":[{"index":1,"data":"A\u0041==","path":[]}]}`,
		`{"leaves":[],"leaves":[{"index":1,"data":"AA==","path":[]}]}`,
		`{"leaves":[{"index":1,"data":"AA==","path":[]}]}x`,
		"{\"leaves\":[{\"index\":1,\"data\":\"AAAA\n\n\n\nAAAA\",\"path\":[]}]}",
		`{"leaves":[{"index":1,"data":"AA\/A","path":[]}]}`,
	} {
		f.Add([]byte(s))
	}
	shared := new(arena) // reused across inputs, as the pool reuses it
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodeProof(raw)
		// Decoding into a reused arena gives the same proof.
		pooled, perr := decodeIn(raw, shared)
		if (err == nil) != (perr == nil) || (err == nil && !reflect.DeepEqual(p, pooled)) {
			t.Fatalf("arena decoding gave %+v, %v; DecodeProof %+v, %v", pooled, perr, p, err)
		}
		shared.reset()
		// The one-pass parser agrees with encoding/json on what it takes.
		if leaves, ok := decodeFast(raw); ok {
			slow, serr := decodeSlow(raw)
			if (err == nil) != (serr == nil) {
				t.Fatalf("fast path gave %v, encoding/json %v", err, serr)
			}
			if err == nil && !reflect.DeepEqual(p, slow) {
				t.Fatalf("fast path gave %+v, encoding/json %+v", p, slow)
			}
			if len(leaves) != len(slow.Leaves) && serr == nil {
				t.Fatalf("fast path found %d leaves, encoding/json %d", len(leaves), len(slow.Leaves))
			}
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupted) {
				t.Fatalf("got %v, want ErrCorrupted", err)
			}
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		q, err := DecodeProof(again)
		if err != nil {
			t.Fatalf("DecodeProof(%s) after a round trip: %v", again, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: got %+v, want %+v", q, p)
		}
	})
}

func FuzzVerify(f *testing.F) {
	const leafSize = 8
	data := chunk(5, leafSize, 3) // leaves of 8, 8, 8, 8, 5 bytes
	leaves := split(data, leafSize)
	tree := mustTree(f, data, leafSize)
	challenges := []Challenge{
		{Indices: []uint32{0, 1, 2, 3, 4}},
		{Indices: []uint32{4, 1}},
		NewChallenge([32]byte{7}, 5, 2),
		{Indices: []uint32{2}},
	}
	for i, ch := range challenges {
		p := mustProve(f, tree, data, ch)
		raw, _ := json.Marshal(p)
		f.Add(raw, uint8(i))
		p.Leaves[0].Data[0] ^= 1
		raw, _ = json.Marshal(p)
		f.Add(raw, uint8(i))
		p.Leaves = p.Leaves[1:]
		raw, _ = json.Marshal(p)
		f.Add(raw, uint8(i))
	}
	f.Add([]byte(`{"leaves":[{"index":4,"data":"AAAAAAA=","path":[]}]}`), uint8(1))
	f.Add([]byte(`null`), uint8(0))
	s := MerkleSegment(Params{Scheme: SchemeMerkleSegment, LeafSize: leafSize, LeavesPerChallenge: 2})
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		ch := challenges[int(which)%len(challenges)]
		err := s.Verify(tree.Tag(), ch, raw) // pooled memory
		var unpooled error
		if p, derr := DecodeProof(raw); derr != nil {
			unpooled = derr
		} else {
			unpooled = Verify(tree.Tag(), ch, p)
		}
		if (err == nil) != (unpooled == nil) {
			t.Fatalf("scheme Verify: %v; DecodeProof and Verify: %v", err, unpooled)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupted) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrCorrupted or ErrInvalid", err)
			}
			return
		}
		p, err := DecodeProof(raw)
		if err != nil {
			t.Fatalf("accepted but DecodeProof: %v", err)
		}
		var got []uint32
		for _, l := range p.Leaves {
			if !bytes.Equal(l.Data, leaves[l.Index]) {
				t.Fatalf("accepted leaf %d data %x, want %x", l.Index, l.Data, leaves[l.Index])
			}
			got = append(got, l.Index)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(ch.Indices))
		if !slices.Equal(got, want) {
			t.Fatalf("accepted indices %v, want %v", got, want)
		}
	})
}

// A hash decodes the same whether its string is plain or escaped, and the
// fast path rejects what the JSON path rejects.
func TestHashJSON(t *testing.T) {
	var want Hash
	for i := range want {
		want[i] = byte(i * 7)
	}
	plain, _ := json.Marshal(want)
	b64 := string(plain[1 : len(plain)-1])
	escaped := `"\u00` + fmt.Sprintf("%x", b64[0]) + b64[1:] + `"`
	for _, in := range []string{string(plain), escaped} {
		var h Hash
		if err := json.Unmarshal([]byte(in), &h); err != nil || h != want {
			t.Fatalf("decode %s: %v, got %x", in, err, h)
		}
	}
	bad := []string{
		`null`,
		`"` + b64[:43] + `"`,                    // too short
		`"` + b64[:43] + `A="`,                  // 45 characters
		`"` + b64[:42] + `%="`,                  // not base64
		`"` + b64[:42] + `B="`,                  // non-zero padding bits (strict)
		`"` + strings.Repeat("A", 40) + `AAAA"`, // 33 bytes, no padding
		`17`,
	}
	for _, in := range bad {
		var h Hash
		if err := json.Unmarshal([]byte(in), &h); err == nil {
			t.Errorf("decode %s: no error", in)
		}
	}
}

// Proofs as farmers send them take the one-pass parser.
func TestDecodeFastTakesProverOutput(t *testing.T) {
	data := chunk(6, 8, 3)
	tree := mustTree(t, data, 8)
	raw, _ := json.Marshal(mustProve(t, tree, data, Challenge{Indices: []uint32{5, 0, 2}}))
	leaves, ok := decodeFast(raw)
	if !ok || len(leaves) != 3 {
		t.Fatalf("decodeFast(%s): %d leaves, %v", raw, len(leaves), ok)
	}
	fast, err := DecodeProof(raw)
	slow, serr := decodeSlow(raw)
	if err != nil || serr != nil || !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast %+v (%v), encoding/json %+v (%v)", fast, err, slow, serr)
	}
}

// The scheme's Verify reuses memory from proof to proof: proofs of many
// sizes, valid and not, in turn, are judged as DecodeProof and Verify
// judge them one by one.
func TestPooledVerifyAgrees(t *testing.T) {
	type tc struct {
		tag Tag
		ch  Challenge
		raw []byte
	}
	var cases []tc
	for _, shape := range []struct{ leaves, leafSize, last int }{{5, 8, 3}, {300, 64, 63}, {2, 1024, 1}, {1000, 16, 7}} {
		data := chunk(shape.leaves, shape.leafSize, shape.last)
		tree := mustTree(t, data, shape.leafSize)
		for k := 1; k <= 40 && k <= shape.leaves; k *= 3 {
			ch := NewChallenge([32]byte{byte(k), byte(shape.leaves)}, int64(shape.leaves), k)
			p := mustProve(t, tree, data, ch)
			raw, _ := json.Marshal(p)
			cases = append(cases, tc{tree.Tag(), ch, raw})
			p.Leaves[len(p.Leaves)-1].Data[0] ^= 1
			bad, _ := json.Marshal(p)
			cases = append(cases, tc{tree.Tag(), ch, bad})
			cases = append(cases, tc{tree.Tag(), ch, raw[:len(raw)/2]})
		}
	}
	s := MerkleSegment(DefaultParams())
	for round := range 3 {
		for i := range cases {
			c := cases[(i*7+round)%len(cases)]
			got := s.Verify(c.tag, c.ch, c.raw)
			var want error
			if p, err := DecodeProof(c.raw); err != nil {
				want = err
			} else {
				want = Verify(c.tag, c.ch, p)
			}
			if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
				t.Fatalf("case %d: pooled %v, unpooled %v", i, got, want)
			}
		}
	}
	accepted := 0
	for _, c := range cases {
		if s.Verify(c.tag, c.ch, c.raw) == nil {
			accepted++
		}
	}
	if accepted == 0 || accepted == len(cases) {
		t.Fatalf("%d of %d cases accepted: want both kinds", accepted, len(cases))
	}
}
