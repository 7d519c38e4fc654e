package proof

import (
	"bytes"
	"encoding/base64"
	"math"

	"github.com/sluicehq/sluice/internal/plain"
)

// decodeFast parses the usual form of a proof, as farmers send it, in one
// pass over raw: an object whose only member is "leaves", an array of
// objects with exactly the members "index" (a plain non-negative integer),
// "data" and "path" (strings and arrays of strings without escapes). It
// reports false for anything else (other or repeated members, nulls,
// escapes, non-ASCII, numbers in other forms, bad base64, malformed
// JSON), and DecodeProof then takes the encoding/json path, which gives
// the same result on every input this accepts and the error messages on
// the rest. encoding/json costs several passes and a reflection walk per
// value; answers are the node's hottest request.
func decodeFast(raw []byte) ([]wireLeafValue, bool) {
	return decodeFastIn(raw, nil)
}

// decodeFastIn is decodeFast taking its memory from a when a is not nil:
// the leaves then point into a and live only until a is reused.
func decodeFastIn(raw []byte, a *arena) ([]wireLeafValue, bool) {
	s := scanner{b: raw, a: a}
	if !s.byte('{') || !s.key("leaves") || !s.byte('[') {
		return nil, false
	}
	var leaves []wireLeafValue
	if a != nil {
		leaves = a.leaves[:0]
		defer func() { a.leaves = leaves[:0] }()
	}
	if s.peek(']') {
		s.i++
	} else {
		for {
			l, ok := s.leaf()
			if !ok || len(leaves) >= MaxProofLeaves {
				return nil, false
			}
			leaves = append(leaves, l)
			if s.byte(']') {
				break
			}
			if !s.byte(',') {
				return nil, false
			}
		}
	}
	if !s.byte('}') {
		return nil, false
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	if leaves == nil {
		leaves = []wireLeafValue{}
	}
	return leaves, true
}

// wireLeafValue is a leaf as decodeFast found it.
type wireLeafValue struct {
	index uint32
	data  []byte
	path  []Hash
}

type scanner struct {
	b []byte
	i int
	a *arena // nil: allocate
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c after optional white space.
func (s *scanner) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) peek(c byte) bool {
	s.ws()
	return s.i < len(s.b) && s.b[s.i] == c
}

// str consumes a string without escapes, control or non-ASCII characters
// and returns its contents.
func (s *scanner) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	j := plain.Run(s.b, s.i)
	if j == len(s.b) || s.b[j] != '"' {
		return nil, false
	}
	out := s.b[s.i:j]
	s.i = j + 1
	return out, true
}

// b64 consumes a string meant to hold base64 and returns its contents,
// which unb64 checks. Its end is found with bytes.IndexByte, much faster
// than str's check of every byte: anything a JSON string may hold other
// than base64 (an escape, a control or non-ASCII character) is refused by
// the decoder, except the line breaks it skips, which unb64 notices.
func (s *scanner) b64() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	j := bytes.IndexByte(s.b[s.i:], '"')
	if j < 0 {
		return nil, false
	}
	enc := s.b[s.i : s.i+j]
	s.i += j + 1
	return enc, true
}

// unb64 decodes enc, canonical padded base64 without line breaks, into
// dst, which has room for it, and returns the decoded length. A line
// break the decoder skipped makes the decoded length short of what enc's
// length gives.
func unb64(dst, enc []byte) (int, bool) {
	if len(enc)%4 != 0 {
		return 0, false
	}
	n, err := base64.StdEncoding.Strict().Decode(dst, enc)
	pads := 0
	for pads < 2 && pads < len(enc) && enc[len(enc)-1-pads] == '=' {
		pads++
	}
	return n, err == nil && n == len(enc)/4*3-pads
}

// key consumes `"name":`.
func (s *scanner) key(name string) bool {
	k, ok := s.str()
	return ok && string(k) == name && s.byte(':')
}

// uint32 consumes a JSON integer in plain form within uint32.
func (s *scanner) uint32() (uint32, bool) {
	s.ws()
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		v = v*10 + uint64(s.b[s.i]-'0')
		s.i++
		if v > math.MaxUint32 {
			return 0, false
		}
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return uint32(v), true
}

// leaf consumes {"index": i, "data": "...", "path": [...]}, members in any
// order, each exactly once.
func (s *scanner) leaf() (wireLeafValue, bool) {
	var l wireLeafValue
	if !s.byte('{') {
		return l, false
	}
	var seen [3]bool
	for {
		k, ok := s.str()
		if !ok || !s.byte(':') {
			return l, false
		}
		switch string(k) {
		case "index":
			if seen[0] {
				return l, false
			}
			seen[0] = true
			if l.index, ok = s.uint32(); !ok {
				return l, false
			}
		case "data":
			if seen[1] {
				return l, false
			}
			seen[1] = true
			enc, ok := s.b64()
			if !ok {
				return l, false
			}
			if s.a != nil {
				l.data = s.a.bytes(base64.StdEncoding.DecodedLen(len(enc)))
			} else {
				l.data = make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
			}
			// Canonical base64, as the slow path wants (leafData).
			n, ok := unb64(l.data, enc)
			if !ok {
				return l, false // the slow path says why
			}
			l.data = l.data[:n]
		case "path":
			if seen[2] {
				return l, false
			}
			seen[2] = true
			if l.path, ok = s.hashes(); !ok {
				return l, false
			}
		default:
			return l, false
		}
		if s.byte('}') {
			return l, seen[0] && seen[1] && seen[2]
		}
		if !s.byte(',') {
			return l, false
		}
	}
}

// hashes consumes an array of base64 hashes of 32 bytes. With an arena
// they are appended to the arena's hashes, else to a slice of their own.
func (s *scanner) hashes() ([]Hash, bool) {
	if !s.byte('[') {
		return nil, false
	}
	dst := &[]Hash{} // never nil: an empty path is an empty slice
	if s.a != nil {
		if s.a.hashes == nil {
			s.a.hashes = make([]Hash, 0, 64)
		}
		dst = &s.a.hashes
	}
	start := len(*dst)
	if s.byte(']') {
		return (*dst)[start:start:start], true
	}
	for {
		if len(*dst)-start >= MaxPathLen {
			return nil, false
		}
		enc, ok := s.b64()
		if !ok || len(enc) != 44 {
			return nil, false
		}
		var buf [33]byte
		if n, ok := unb64(buf[:], enc); !ok || n != len(Hash{}) {
			return nil, false
		}
		if len(*dst) == cap(*dst) {
			// Grow into a new array, taking this path's hashes along:
			// earlier leaves keep the old one.
			grown := make([]Hash, len(*dst)-start, max(2*cap(*dst), 16))
			copy(grown, (*dst)[start:])
			*dst, start = grown, 0
		}
		*dst = append(*dst, Hash(buf[:32]))
		if s.byte(']') {
			end := len(*dst)
			return (*dst)[start:end:end], true
		}
		if !s.byte(',') {
			return nil, false
		}
	}
}
