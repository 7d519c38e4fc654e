package blobstore

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// emptyCID is the well-known CIDv1 (raw, sha2-256) of the empty input.
const emptyCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

// refEncode builds a CID string independently of the package: the binary
// prefix bytes, then encoding/base32 lower-cased without padding.
func refEncode(prefix []byte, digest []byte) string {
	bin := append(append([]byte{}, prefix...), digest...)
	return "b" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(bin))
}

// refCID is the expected string form of the CID of data.
func refCID(data []byte) string {
	d := sha256.Sum256(data)
	return refEncode([]byte{0x01, 0x55, 0x12, 0x20}, d[:])
}

func TestCIDVectors(t *testing.T) {
	// The reference method must reproduce the anchor before it is trusted.
	if got := refCID(nil); got != emptyCID {
		t.Fatalf("reference encoding of empty input: got %s, want %s", got, emptyCID)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, emptyCID},
		{"hello world", []byte("hello world\n"), refCID([]byte("hello world\n"))},
		{"one byte", []byte{0}, refCID([]byte{0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Sum(tt.data)
			if got := c.String(); got != tt.want {
				t.Errorf("String: got %s, want %s", got, tt.want)
			}
			p, err := ParseCID(tt.want)
			if err != nil {
				t.Fatalf("ParseCID(%s): %v", tt.want, err)
			}
			if p != c {
				t.Errorf("ParseCID: got %x, want %x", p, c)
			}
		})
	}
}

func TestCIDRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		var c CID
		for j := range c {
			c[j] = byte(rng.Uint32())
		}
		if i == 0 {
			c = CID{} // the zero digest
		}
		s := c.String()
		if want := refEncode([]byte{0x01, 0x55, 0x12, 0x20}, c[:]); s != want {
			t.Fatalf("String: got %s, want %s", s, want)
		}
		p, err := ParseCID(s)
		if err != nil {
			t.Fatalf("ParseCID(%s): %v", s, err)
		}
		if p != c {
			t.Fatalf("round trip of %s: got %x, want %x", s, p, c)
		}
	}
}

func TestCIDText(t *testing.T) {
	type doc struct {
		CID CID `json:"cid"`
	}
	in := doc{CID: Sum([]byte("x"))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"cid":"` + refCID([]byte("x")) + `"}`; string(b) != want {
		t.Errorf("marshal: got %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("unmarshal: got %s, want %s", out.CID, in.CID)
	}
	if err := json.Unmarshal([]byte(`{"cid":"QmPmnyA8ZaYFJknPhVBE1u4hbGqvLGvu5cxCAPb1Nqb1aq"}`), &out); !errors.Is(err, ErrInvalidCID) {
		t.Errorf("unmarshal CIDv0: got %v, want ErrInvalidCID", err)
	}
}

func TestParseCIDRejects(t *testing.T) {
	d := sha256.Sum256(nil)
	tests := []struct {
		name, s string
	}{
		{"empty", ""},
		{"CIDv0", "QmPmnyA8ZaYFJknPhVBE1u4hbGqvLGvu5cxCAPb1Nqb1aq"},
		{"dag-pb codec", refEncode([]byte{0x01, 0x70, 0x12, 0x20}, d[:])},
		{"dag-cbor codec", refEncode([]byte{0x01, 0x71, 0x12, 0x20}, d[:])},
		{"sha3-256 multihash", refEncode([]byte{0x01, 0x55, 0x16, 0x20}, d[:])},
		{"version 0 byte", refEncode([]byte{0x00, 0x55, 0x12, 0x20}, d[:])},
		{"version 2", refEncode([]byte{0x02, 0x55, 0x12, 0x20}, d[:])},
		{"sha2-512 multihash", refEncode([]byte{0x01, 0x55, 0x13, 0x40}, append(d[:], d[:]...))},
		{"base58btc multibase", "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA"},
		{"base16 multibase", "f01551220" + strings.Repeat("00", 32)},
		{"upper-case multibase", strings.ToUpper(emptyCID)},
		{"upper-case digit", emptyCID[:20] + "X" + emptyCID[21:]},
		{"uri", "ipfs://" + emptyCID},
		{"truncated by one", emptyCID[:len(emptyCID)-1]},
		{"truncated", emptyCID[:20]},
		{"prefix only", "b"},
		{"one too long", emptyCID + "a"},
		{"padded", emptyCID + "======"},
		{"non-zero trailing bits", emptyCID[:len(emptyCID)-1] + "v"},
		{"not base32", emptyCID[:20] + "1" + emptyCID[21:]},
		{"space", " " + emptyCID[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCID(tt.s)
			if !errors.Is(err, ErrInvalidCID) {
				t.Fatalf("ParseCID(%q): got %s, %v; want ErrInvalidCID", tt.s, c, err)
			}
		})
	}
}
