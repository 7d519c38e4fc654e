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

// An offline farmer's uptime falls as time passes (the time since its
// first contract grows): rebuilds keep the list current with nobody
// online and nothing published, as /status/show is.
func TestStatusRebuildKeepsOfflineUptimeCurrent(t *testing.T) {
	now := time.Now()
	x := newStatusIndex()
	s := &statusSource{id: "f1"}
	s.uptime.Rise(now.Add(-time.Hour))
	s.uptime.Fall(now) // up for the hour before now, offline since
	x.put(s)
	x.rebuild(now)
	later := now.Add(time.Hour)
	x.rebuild(later)
	rows, err := x.list(StatusQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if want := s.at(later); len(rows) != 1 || rows[0] != want || want.Uptime != 50 {
		t.Fatalf("list an hour offline: got %+v, want %+v (uptime 50)", rows, want)
	}
}

// Farmers that never had a contract have rows that time does not change:
// with nothing published since, a rebuild keeps the view it has.
func TestStatusRebuildSkipsWhenNothingCanChange(t *testing.T) {
	now := time.Now()
	x := newStatusIndex()
	x.put(&statusSource{id: "f1"})
	x.put(&statusSource{id: "f2"})
	x.rebuild(now)
	v := x.view.Load()
	x.rebuild(now.Add(time.Hour))
	if x.view.Load() != v {
		t.Fatal("rebuilt a view that could not have changed")
	}
	// A farmer's first contract makes its row change with time: every
	// rebuild from then on makes a new view, also once it is offline.
	s := &statusSource{id: "f2"}
	s.uptime.Rise(now.Add(time.Hour))
	s.uptime.Fall(now.Add(2 * time.Hour))
	x.put(s)
	for i := range 3 {
		v = x.view.Load()
		at := now.Add(time.Duration(3+i) * time.Hour)
		x.rebuild(at)
		if nv := x.view.Load(); nv == v || !nv.at.Equal(at) {
			t.Fatalf("rebuild %d after a first contract kept the old view", i)
		}
	}
	// Removed, the farmer no longer keeps the rebuilds going.
	x.remove("f2")
	x.rebuild(now.Add(6 * time.Hour))
	v = x.view.Load()
	x.rebuild(now.Add(7 * time.Hour))
	if x.view.Load() != v {
		t.Fatal("rebuilt a view that could not have changed after a remove")
	}
}
