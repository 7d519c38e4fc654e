package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/bits"
	"testing"
)

// The figures the spec asks for: proving and verifying one challenge
// (k = 4) on a 1 MiB chunk of 1024-byte leaves, against the bare SHA-256
// work a verification needs.
const (
	benchChunk = 1 << 20
	benchLeaf  = 1024
	benchK     = 4
)

type benchFixture struct {
	data  *Seeded
	tree  *Tree
	ch    Challenge
	proof Proof
	raw   []byte
}

func newBenchFixture(b *testing.B) benchFixture {
	b.Helper()
	data := NewSeeded("bench", benchChunk)
	tree, err := BuildTree(data, data.Size(), benchLeaf)
	if err != nil {
		b.Fatal(err)
	}
	ch := NewChallenge([32]byte{42}, tree.Tag().Leaves(), benchK)
	p, err := tree.Prove(data, ch)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	return benchFixture{data: data, tree: tree, ch: ch, proof: p, raw: raw}
}

func BenchmarkProve(b *testing.B) {
	fx := newBenchFixture(b)
	var seed [32]byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(seed[:], uint64(i))
		ch := NewChallenge(seed, fx.tree.Tag().Leaves(), benchK)
		if _, err := fx.tree.Prove(fx.data, ch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	fx := newBenchFixture(b)
	tag := fx.tree.Tag()
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(tag, fx.ch, fx.proof); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyJSON is what the node does per answer: decode, then
// verify.
func BenchmarkVerifyJSON(b *testing.B) {
	fx := newBenchFixture(b)
	tag := fx.tree.Tag()
	s := MerkleSegment(DefaultParams())
	b.SetBytes(int64(len(fx.raw)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Verify(tag, fx.ch, fx.raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA256Baseline hashes what Verify hashes for the same chunk:
// k leaves of 1 + 1024 bytes and k·log2(n) inner nodes of 65 bytes.
func BenchmarkSHA256Baseline(b *testing.B) {
	leaf := make([]byte, 1+benchLeaf)
	var inner [65]byte
	depth := bits.Len(uint(benchChunk/benchLeaf)) - 1
	b.ReportAllocs()
	for b.Loop() {
		for range benchK {
			sum := sha256.Sum256(leaf)
			leaf[1] = sum[0]
			for range depth {
				sum = sha256.Sum256(inner[:])
				inner[1] = sum[0]
			}
		}
	}
}

func BenchmarkSeeded(b *testing.B) {
	s := NewSeeded("0123456789abcdef0123456789abcdef", benchChunk)
	buf := make([]byte, 64<<10)
	b.SetBytes(benchChunk)
	for b.Loop() {
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{s.NewReader()}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	const size = 32 << 20
	data := make([]byte, size)
	NewSeeded("encode", size).ReadAt(data, 0)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(bytes.NewReader(data), size, benchLeaf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildTree(b *testing.B) {
	data := make([]byte, benchChunk)
	NewSeeded("build", benchChunk).ReadAt(data, 0)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildTree(bytes.NewReader(data), benchChunk, benchLeaf); err != nil {
			b.Fatal(err)
		}
	}
}
