package actors

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
)

// FarmerStatus is one farmer's public statistics, as the status API shows
// them. The list and /status/show compute them with the same function.
type FarmerStatus struct {
	ID         string
	Address    string
	Location   *sluice.Location
	Uptime     float64 // percent, two decimals
	Heartbeats int64   // valid proofs ever
	Contracts  int     // live contracts
	Size       int64   // bytes of live contracts
	Online     bool    // any live contract
	IPHash     string  // keyed hash of the farmer's IP
	LastDue    time.Time
}

// statusSource is what a token actor publishes after each change: enough
// to compute its FarmerStatus at any instant.
type statusSource struct {
	id, address, ipHash string
	location            *sluice.Location
	uptime              sluice.Uptime
	heartbeats          int64
	contracts           int
	size                int64
	lastDue             time.Time
}

func (s *statusSource) at(now time.Time) FarmerStatus {
	return FarmerStatus{ID: s.id, Address: s.address, Location: s.location, Uptime: s.uptime.Percent(now),
		Heartbeats: s.heartbeats, Contracts: s.contracts, Size: s.size, Online: s.contracts > 0,
		IPHash: s.ipHash, LastDue: s.lastDue}
}

// SortKeys are the status list's sort keys.
var SortKeys = []string{"id", "address", "uptime", "heartbeats", "contracts", "size", "online"}

// compareValue orders two rows by one key's value alone.
func compareValue(key string) func(a, b *FarmerStatus) int {
	switch key {
	case "address":
		return func(a, b *FarmerStatus) int { return cmp.Compare(a.Address, b.Address) }
	case "uptime":
		return func(a, b *FarmerStatus) int { return cmp.Compare(a.Uptime, b.Uptime) }
	case "heartbeats":
		return func(a, b *FarmerStatus) int { return cmp.Compare(a.Heartbeats, b.Heartbeats) }
	case "contracts":
		return func(a, b *FarmerStatus) int { return cmp.Compare(a.Contracts, b.Contracts) }
	case "size":
		return func(a, b *FarmerStatus) int { return cmp.Compare(a.Size, b.Size) }
	case "online":
		return func(a, b *FarmerStatus) int { return cmp.Compare(boolInt(a.Online), boolInt(b.Online)) }
	}
	return func(a, b *FarmerStatus) int { return cmp.Compare(a.ID, b.ID) }
}

// compareBy orders two rows by one key, ties by id.
func compareBy(key string) func(a, b *FarmerStatus) int {
	by := compareValue(key)
	return func(a, b *FarmerStatus) int {
		if c := by(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// statusView is one rebuild of the index: every farmer's row computed at
// one instant, sorted by every key both ways, all and online only.
type statusView struct {
	at    time.Time
	byKey map[string]*sortedRows
}

type sortedRows struct {
	asc, desc, ascOnline, descOnline []*FarmerStatus
}

// statusIndex answers status list queries without touching the farmers:
// token actors publish their sources as they change, and a timer rebuilds
// the sorted view every refresh period. A list is therefore at most one
// refresh period (plus one rebuild) stale; /status/show asks the token
// actor and is exact.
type statusIndex struct {
	mu      sync.Mutex
	sources map[string]*statusSource
	dirty   bool
	view    atomic.Pointer[statusView]
}

func newStatusIndex() *statusIndex {
	x := &statusIndex{sources: map[string]*statusSource{}}
	x.view.Store(&statusView{byKey: map[string]*sortedRows{}})
	return x
}

func (x *statusIndex) put(s *statusSource) {
	x.mu.Lock()
	x.sources[s.id] = s
	x.dirty = true
	x.mu.Unlock()
}

func (x *statusIndex) remove(id string) {
	x.mu.Lock()
	delete(x.sources, id)
	x.dirty = true
	x.mu.Unlock()
}

// rebuild computes a new view at now. Rows of farmers that are online
// change with time (their uptime grows), so a view is rebuilt even when no
// source changed, unless nobody is online and nothing changed.
func (x *statusIndex) rebuild(now time.Time) {
	x.mu.Lock()
	rows := make([]*FarmerStatus, 0, len(x.sources))
	anyOnline := false
	for _, s := range x.sources {
		r := s.at(now)
		anyOnline = anyOnline || r.Online
		rows = append(rows, &r)
	}
	dirty := x.dirty
	x.dirty = false
	x.mu.Unlock()
	if !dirty && !anyOnline && len(x.view.Load().byKey) > 0 {
		return
	}
	v := &statusView{at: now, byKey: make(map[string]*sortedRows, len(SortKeys))}
	for _, key := range SortKeys {
		cmpFn := compareBy(key)
		asc := slices.Clone(rows)
		slices.SortFunc(asc, cmpFn)
		v.byKey[key] = &sortedRows{asc: asc, desc: descending(asc, key), ascOnline: onlineOnly(asc)}
		v.byKey[key].descOnline = onlineOnly(v.byKey[key].desc)
	}
	x.view.Store(v)
}

// descending reverses an ascending order by value while keeping ties in
// ascending id order (ties break by id in both directions).
func descending(asc []*FarmerStatus, key string) []*FarmerStatus {
	by := compareValue(key)
	same := func(a, b *FarmerStatus) bool { return by(a, b) == 0 }
	out := make([]*FarmerStatus, 0, len(asc))
	for end := len(asc); end > 0; {
		start := end - 1
		for start > 0 && same(asc[start-1], asc[end-1]) {
			start--
		}
		out = append(out, asc[start:end]...)
		end = start
	}
	return out
}

func onlineOnly(rows []*FarmerStatus) []*FarmerStatus {
	out := make([]*FarmerStatus, 0, len(rows)/2)
	for _, r := range rows {
		if r.Online {
			out = append(out, r)
		}
	}
	return out
}

// StatusQuery selects rows of the status list. Limit 0 means all rows;
// Page is 0-based and applies with Limit, after the online filter.
type StatusQuery struct {
	SortBy     string
	Descending bool
	OnlineOnly bool
	Limit      int
	Page       int
}

// list answers a query from the current view.
func (x *statusIndex) list(q StatusQuery) ([]FarmerStatus, error) {
	if q.SortBy == "" {
		q.SortBy = "id"
	}
	if !slices.Contains(SortKeys, q.SortBy) {
		return nil, &sluice.Error{Kind: sluice.ErrInvalid, Message: sluice.MsgInvalidSort}
	}
	s := x.view.Load().byKey[q.SortBy]
	if s == nil {
		return []FarmerStatus{}, nil
	}
	rows := s.asc
	switch {
	case q.Descending && q.OnlineOnly:
		rows = s.descOnline
	case q.Descending:
		rows = s.desc
	case q.OnlineOnly:
		rows = s.ascOnline
	}
	if q.Limit > 0 {
		from := len(rows)
		if q.Page < len(rows) {
			from = min(len(rows), q.Limit*q.Page)
		}
		rows = rows[from:min(len(rows), from+q.Limit)]
	}
	out := make([]FarmerStatus, len(rows))
	for i, r := range rows {
		out[i] = *r
	}
	return out, nil
}
