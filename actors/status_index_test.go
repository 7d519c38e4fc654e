package actors

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func statusIndexOf(n int, now time.Time) *statusIndex {
	x := newStatusIndex()
	for i := range n {
		s := &statusSource{id: fmt.Sprintf("f%03d", (i*37)%n), address: fmt.Sprintf("0x%03d", (i*11)%n),
			heartbeats: int64(i % 5), contracts: i % 3, size: int64(i%4) << 10}
		s.uptime.Rise(now.Add(-time.Duration(i) * time.Minute))
		x.put(s)
	}
	return x
}

// A rebuild sorts by the keys queried lately and leaves the others to the
// first query that needs them; both give the same rows.
func TestStatusRebuildSortsOnlyTheKeysAskedFor(t *testing.T) {
	now := time.Now()
	x := statusIndexOf(50, now)
	x.rebuild(now)
	sortedYet := func() []string {
		var out []string
		v := x.view.Load()
		for k, key := range sortKeys {
			if v.keys[k].rows.asc != nil {
				out = append(out, key)
			}
		}
		return out
	}
	if got := sortedYet(); len(got) != 0 {
		t.Fatalf("a rebuild before any query sorted by %v", got)
	}

	lazy, err := x.list(StatusQuery{SortBy: "uptime", Descending: true, OnlineOnly: true, Limit: 7, Page: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedYet(); !slices.Equal(got, []string{"uptime"}) {
		t.Fatalf("after a query by uptime, sorted by %v, want [uptime]", got)
	}

	// The next rebuild sorts by uptime before any query, and by nothing
	// else; its answer is the one the lazy sort gave.
	x.rebuild(now)
	if got := sortedYet(); !slices.Equal(got, []string{"uptime"}) {
		t.Fatalf("a rebuild after a query by uptime sorted by %v, want [uptime]", got)
	}
	eager, err := x.list(StatusQuery{SortBy: "uptime", Descending: true, OnlineOnly: true, Limit: 7, Page: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(lazy) != 7 || !slices.EqualFunc(lazy, eager, func(a, b FarmerStatus) bool { return a.ID == b.ID }) {
		t.Fatalf("lazy and eager sorts differ: %v, %v", ids(lazy), ids(eager))
	}
	for i := 1; i < len(eager); i++ {
		if eager[i-1].Uptime < eager[i].Uptime || !eager[i].Online {
			t.Fatalf("not by uptime descending, online only: %v", eager)
		}
	}

	// A key not asked for in askedFor is left to its next query again.
	x.asked[slices.Index(sortKeys[:], "uptime")].Store(now.Add(-askedFor).UnixNano())
	x.rebuild(now)
	if got := sortedYet(); len(got) != 0 {
		t.Fatalf("a rebuild after askedFor sorted by %v", got)
	}
}
