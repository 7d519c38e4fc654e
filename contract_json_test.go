package sluice_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

// AppendJSON is byte for byte encoding/json's encoding of a contract, for
// contracts of every shape: empty and set optional fields, zero and
// non-UTC times, strings encoding/json escapes, nil and empty indices.
func TestContractAppendJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", "0x1234abcd/ff", "https://node.example/api?x=1&y=<2>", `q"uote\`, "tab\there",
		"é", "\u2028", "\xff\xfe", "ctl\x01", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"}
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("X", -(9*3600 + 30*60))}
	tm := func() time.Time {
		if r.IntN(4) == 0 {
			return time.Time{}
		}
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2))).In(zones[r.IntN(len(zones))])
	}
	for i := range 5000 {
		var c sluice.Contract
		c.Farmer = strs[r.IntN(len(strs))]
		for k := range c.FileHash {
			c.FileHash[k] = byte(r.Uint32())
		}
		c.Size, c.Seed, c.URL = r.Int64N(1<<40)-r.Int64N(2), strs[r.IntN(len(strs))], strs[r.IntN(len(strs))]
		c.Tag = proof.Tag{LeafSize: r.IntN(5000) - 1, Size: r.Int64()}
		for k := range c.Tag.Root {
			c.Tag.Root[k] = byte(r.Uint32())
		}
		c.Start, c.End, c.Due, c.Closed = tm(), tm(), tm(), tm()
		c.Interval = time.Duration(r.Int64()) - time.Duration(r.Int64())
		c.Limit, c.Index = r.IntN(3)*r.IntN(1000)-r.IntN(2), r.IntN(1<<20)
		c.Quote, c.Source, c.Offset = strs[r.IntN(len(strs))], strs[r.IntN(len(strs))], r.Int64N(3)*r.Int64N(1<<30)
		c.Challenge.Seed = [32]byte{byte(i), byte(i >> 8)}
		switch r.IntN(3) {
		case 0: // nil
		case 1:
			c.Challenge.Indices = []uint32{}
		default:
			for range r.IntN(40) {
				c.Challenge.Indices = append(c.Challenge.Indices, r.Uint32())
			}
		}
		c.Answered, c.Proofs = r.IntN(2) == 0, r.Int64N(1e6)
		c.State, c.Version = sluice.ContractState(r.IntN(4)), r.Uint64()
		want, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("contract %d:\n got %s\nwant %s", i, got, want)
		}
		var back sluice.Contract
		if err := json.Unmarshal(want, &back); err != nil {
			t.Fatalf("contract %d: does not decode: %v", i, err)
		}
		// DecodeContract gives what encoding/json gives.
		got, err := sluice.DecodeContract(c.AppendJSON([]byte("x"))[1:])
		if err != nil || !reflect.DeepEqual(got, back) {
			t.Fatalf("contract %d: DecodeContract gave %+v, %v; encoding/json %+v", i, got, err, back)
		}

	}
}

func BenchmarkContractJSON(b *testing.B) {
	c := sluice.Contract{Farmer: "0123456789abcdef0123456789abcdef01234567", Size: 32768, Seed: "c2VlZA==",
		Tag: proof.Tag{LeafSize: 64, Size: 32768}, Start: time.Now(), Interval: time.Minute, Limit: 256,
		Index: 17, Challenge: proof.Challenge{Indices: []uint32{1, 22, 333, 4444, 55, 66, 77, 88, 99, 100, 1, 2, 3, 4, 5, 6}},
		Due: time.Now().Add(time.Minute), Proofs: 16, Version: 18}
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(&c)
		}
	})
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = c.AppendJSON(buf[:0])
		}
	})
	enc := c.AppendJSON(nil)
	b.Run("decode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			var d sluice.Contract
			json.Unmarshal(enc, &d)
		}
	})
	b.Run("decode/one-pass", func(b *testing.B) {
		for b.Loop() {
			sluice.DecodeContract(enc)
		}
	})
}
