package blobstore

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice"
)

// ErrInvalidCID is wrapped by every error ParseCID and UnmarshalText
// return. It is of the domain kind sluice.ErrInvalid.
var ErrInvalidCID = fmt.Errorf("%w CID", sluice.ErrInvalid)

// CID names a blob: a CIDv1 with the raw codec (0x55) and a sha2-256
// multihash. The value is the 32-byte digest; the version, codec and hash
// function are fixed, so they are implied and only appear in the string form.
//
// The string form is the one IPFS prints for such CIDs: multibase base32,
// lower case, no padding, prefix "b" (59 characters starting "bafkrei").
// The zero CID is not the CID of the empty input.
type CID [32]byte

// cidPrefix is the binary CID before the digest: version 1, codec raw,
// multihash function sha2-256, digest length 32. Each is a one-byte varint.
var cidPrefix = [4]byte{0x01, 0x55, 0x12, 0x20}

const (
	// base32Alphabet is RFC 4648 base32 in lower case (multibase "b").
	base32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	// binaryLen is the binary CID's length: prefix and digest.
	binaryLen = len(cidPrefix) + sha256.Size
	// stringLen is the string form's length: "b" and ceil(36*8/5) digits.
	stringLen = 1 + (binaryLen*8+4)/5
)

// Sum returns the CID of b.
func Sum(b []byte) CID { return CID(sha256.Sum256(b)) }

// String returns the multibase base32 form, e.g. "bafkrei...".
func (c CID) String() string {
	var bin [binaryLen]byte
	copy(bin[:], cidPrefix[:])
	copy(bin[len(cidPrefix):], c[:])

	out := make([]byte, 0, stringLen)
	out = append(out, 'b')
	var acc uint32 // pending bits, right-aligned
	bits := 0      // how many bits of acc are pending
	for _, b := range bin {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, base32Alphabet[(acc>>bits)&31])
		}
	}
	if bits > 0 { // pad the last digit with zero bits
		out = append(out, base32Alphabet[(acc<<(5-bits))&31])
	}
	return string(out)
}

// ParseCID parses the string form that String returns and nothing else:
// CIDv0 ("Qm..."), other multibases, upper case, other codecs or hash
// functions, wrong lengths and non-canonical trailing bits are all errors
// wrapping ErrInvalidCID.
func ParseCID(s string) (CID, error) {
	var c CID
	switch {
	case s == "":
		return c, fmt.Errorf("%w: empty", ErrInvalidCID)
	case strings.HasPrefix(s, "Qm"):
		return c, fmt.Errorf("%w: CIDv0 is not supported, want a CIDv1 in base32", ErrInvalidCID)
	case s[0] == 'B':
		return c, fmt.Errorf("%w: upper-case base32 is not supported, want lower case", ErrInvalidCID)
	case s[0] != 'b':
		return c, fmt.Errorf("%w: multibase %q is not supported, want base32 \"b\"", ErrInvalidCID, s[0])
	case len(s) != stringLen:
		return c, fmt.Errorf("%w: length %d, want %d", ErrInvalidCID, len(s), stringLen)
	}

	var bin [binaryLen]byte
	n := 0
	var acc uint32
	bits := 0
	for i := 1; i < len(s); i++ {
		ch := s[i]
		var v byte
		switch {
		case ch >= 'a' && ch <= 'z':
			v = ch - 'a'
		case ch >= '2' && ch <= '7':
			v = ch - '2' + 26
		case ch >= 'A' && ch <= 'Z':
			return c, fmt.Errorf("%w: upper-case base32 is not supported, want lower case", ErrInvalidCID)
		default:
			return c, fmt.Errorf("%w: character %q is not base32", ErrInvalidCID, ch)
		}
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			bin[n] = byte(acc >> bits)
			n++
		}
	}
	// 58 digits carry 290 bits for 288: the 2 left over must be zero, so
	// that each CID has exactly one accepted spelling.
	if acc&(1<<bits-1) != 0 {
		return c, fmt.Errorf("%w: non-zero trailing bits", ErrInvalidCID)
	}

	switch {
	case bin[0] != cidPrefix[0]:
		return c, fmt.Errorf("%w: version %d, want 1", ErrInvalidCID, bin[0])
	case bin[1] != cidPrefix[1]:
		return c, fmt.Errorf("%w: codec 0x%x, want raw (0x55)", ErrInvalidCID, bin[1])
	case bin[2] != cidPrefix[2] || bin[3] != cidPrefix[3]:
		return c, fmt.Errorf("%w: multihash 0x%x/%d, want sha2-256 (0x12/32)", ErrInvalidCID, bin[2], bin[3])
	}
	copy(c[:], bin[len(cidPrefix):])
	return c, nil
}

// MarshalText implements encoding.TextMarshaler with the string form.
func (c CID) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseCID.
func (c *CID) UnmarshalText(b []byte) error {
	p, err := ParseCID(string(b))
	if err != nil {
		return err
	}
	*c = p
	return nil
}
