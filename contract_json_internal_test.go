package sluice

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/proof"
)

// FuzzDecodeContract: on every input the one-pass reader takes,
// encoding/json gives the same contract.
func FuzzDecodeContract(f *testing.F) {
	c := Contract{Farmer: "f", Size: 5, Seed: "s", Limit: 3, Quote: "q", Source: "cid", Offset: 7, Index: 2, Version: 9}
	c.Challenge.Indices = []uint32{1, 2}
	f.Add(c.AppendJSON(nil))
	f.Add((&Contract{}).AppendJSON(nil))
	f.Add([]byte(`{"farmer":"f","size":-0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast Contract
		if !fast.readFast(b) {
			return
		}
		var slow Contract
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("%q: one-pass reader took it, encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\none-pass %+v\nencoding/json %+v", b, fast, slow)
		}
	})
}

// The one-pass reader takes what AppendJSON writes, with every optional
// member present or absent, times in any zone and negative numbers.
func TestReadFastTakesAppendJSON(t *testing.T) {
	start := time.Date(2026, 11, 21, 5, 4, 3, 123456789, time.FixedZone("", -5*3600))
	for i := range 64 {
		c := Contract{Farmer: "0123456789abcdef0123", FileHash: FileHash{byte(i), 0xff}, Size: int64(i) - 3,
			Tag: proof.Tag{LeafSize: 64, Size: 32768, Root: proof.Hash{byte(i)}}, Start: start.UTC(), Interval: -time.Duration(i),
			Index: i, Due: start.Add(time.Duration(i) * time.Hour), Answered: i%2 == 0, Proofs: int64(i), State: ContractState(i % 4),
			Version: math.MaxUint64 - uint64(i)}
		c.Challenge.Seed[0] = byte(i)
		if i%3 > 0 {
			c.Challenge.Indices = make([]uint32, i%3)
			c.Challenge.Indices[0] = math.MaxUint32
		}
		for bit, set := range []func(){
			func() { c.Seed = "5eed" }, func() { c.URL = "https://x/y" }, func() { c.Limit = -1 },
			func() { c.End = start }, func() { c.Quote = "q" }, func() { c.Source = "cid" },
			func() { c.Offset = math.MinInt64 }, func() { c.Closed = start.Local() },
		} {
			if i&(1<<bit) != 0 {
				set()
			}
		}
		b := c.AppendJSON(nil)
		var fast, slow Contract
		if !fast.readFast(b) {
			t.Fatalf("contract %d: one-pass reader refused %s", i, b)
		}
		if err := json.Unmarshal(b, &slow); err != nil || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("contract %d: one-pass %+v, encoding/json %+v (%v)", i, fast, slow, err)
		}
	}
}
