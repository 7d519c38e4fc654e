package actors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

// indexOrder is what quoteIndex.of must answer for refs added in this
// order: newest first, quotes of one instant in the order they were added.
func indexOrder(added []quoteRef) []string {
	refs := slices.Clone(added)
	slices.SortStableFunc(refs, func(a, b quoteRef) int { return b.created.Compare(a.created) })
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.id
	}
	return out
}

// TestQuoteIndexOrder: a user's quotes come newest first whatever the
// order they were added in (start-up adds them in the store's order),
// with reads between the adds, and quotes of one instant in the order
// they were added. Owners are told apart case-insensitively.
func TestQuoteIndexOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }

	x := newQuoteIndex()
	if got := x.of("0xAbC"); len(got) != 0 {
		t.Fatalf("no quotes: got %v, want none", got)
	}
	steps := []struct {
		id      string
		created time.Time
		want    []string // of after the add
	}{
		{"a", at(10), []string{"a"}},
		{"b", at(20), []string{"b", "a"}},
		{"c", at(5), []string{"b", "a", "c"}},       // older than the last: out of order
		{"d", at(20), []string{"b", "d", "a", "c"}}, // same instant as b, added after it
		{"e", at(30), []string{"e", "b", "d", "a", "c"}},
		{"f", at(10), []string{"e", "b", "d", "a", "f", "c"}},
		{"g", at(1), []string{"e", "b", "d", "a", "f", "c", "g"}},
		{"h", at(30), []string{"e", "h", "b", "d", "a", "f", "c", "g"}},
	}
	for _, s := range steps {
		x.add("0xABC", s.id, s.created)
		if got := x.of("0xabc"); !slices.Equal(got, s.want) {
			t.Fatalf("after adding %s: got %v, want %v", s.id, got, s.want)
		}
	}
	if got := x.of("0xdef"); len(got) != 0 {
		t.Fatalf("another owner: got %v, want none", got)
	}

	// Random adds, with few distinct instants (many ties) and reads now
	// and then, against a sort of everything added.
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		x := newQuoteIndex()
		var added []quoteRef
		for i := range 200 {
			ref := quoteRef{strconv.Itoa(i), at(r.IntN(20))}
			if r.IntN(4) > 0 && len(added) > 0 {
				ref.created = added[len(added)-1].created.Add(time.Duration(r.IntN(3)) * time.Second) // mostly in order
			}
			x.add("owner", ref.id, ref.created)
			added = append(added, ref)
			if r.IntN(10) == 0 {
				if got, want := x.of("owner"), indexOrder(added); !slices.Equal(got, want) {
					t.Fatalf("round %d, after %d adds: got %v, want %v", round, i+1, got, want)
				}
			}
		}
		if got, want := x.of("owner"), indexOrder(added); !slices.Equal(got, want) {
			t.Fatalf("round %d: got %v, want %v", round, got, want)
		}
	}
}

// TestQuoteIndexOrderByWallClock: a quote made since the start (whose
// time has a monotonic reading) and the quotes loaded at start-up (whose
// times, from their records, have none) are ordered by the wall clock,
// as they would be after a restart.
func TestQuoteIndexOrderByWallClock(t *testing.T) {
	now := time.Now()
	x := newQuoteIndex()
	x.add("o", "loaded", now.Round(0))
	x.add("o", "new", now)
	if got, want := x.of("o"), []string{"loaded", "new"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (one instant, in the order added)", got, want)
	}
}

// TestQuoteIndexClaims: an id is claimed once, free again once unclaimed
// unless a quote was indexed with it.
func TestQuoteIndexClaims(t *testing.T) {
	x := newQuoteIndex()
	if !x.claim("q") || x.claim("q") {
		t.Fatal("claim q twice: got the second too, want only the first")
	}
	x.unclaim("q")
	if !x.claim("q") {
		t.Fatal("claim q after unclaim: got refused, want it")
	}
	x.add("o", "q", time.Now())
	x.unclaim("q")
	if x.claim("q") {
		t.Fatal("claim an indexed id: got it, want refused")
	}
}

// BenchmarkQuoteIndexAdd adds quotes, each the newest, for an owner who
// already has about n (between n and 2n): the cost of a getQuote's index
// update in a flood of quotes for one address.
func BenchmarkQuoteIndexAdd(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			ids := make([]string, 2*n)
			for i := range ids {
				ids[i] = fmt.Sprintf("%032x", i)
			}
			fill := func() *quoteIndex {
				x := newQuoteIndex()
				for i := range n {
					x.add("0xowner", ids[i], base.Add(time.Duration(i)*time.Millisecond))
				}
				return x
			}
			x := fill()
			k := n
			b.ResetTimer()
			for range b.N {
				if k == 2*n {
					b.StopTimer()
					x, k = fill(), n
					b.StartTimer()
				}
				x.add("0xowner", ids[k], base.Add(time.Duration(k)*time.Millisecond))
				k++
			}
		})
	}
}
