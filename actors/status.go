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

// timed reports whether the source's row changes with time alone: the
// uptime of a farmer that ever had a contract grows while it is online
// and falls while it is offline (the time since its first contract grows).
// Every other field changes only when the token publishes.
func (s *statusSource) timed() bool { return !s.uptime.First.IsZero() }

func (s *statusSource) at(now time.Time) FarmerStatus {
	return FarmerStatus{ID: s.id, Address: s.address, Location: s.location, Uptime: s.uptime.Percent(now),
		Heartbeats: s.heartbeats, Contracts: s.contracts, Size: s.size, Online: s.contracts > 0,
		IPHash: s.ipHash, LastDue: s.lastDue}
}

// SortKeys are the status list's sort keys (a copy: the index works with
// sortKeys, whose positions index its per-key arrays).
var SortKeys = slices.Clone(sortKeys[:])

var sortKeys = [...]string{"id", "address", "uptime", "heartbeats", "contracts", "size", "online"}

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
// one instant. Its orders (by every key, both ways, all and online only)
// are sorted when first asked for, or by the rebuild itself for keys
// asked for lately (statusIndex.asked).
type statusView struct {
	at    time.Time
	built bool // false only for the empty view before the first rebuild
	rows  []*FarmerStatus
	keys  [len(sortKeys)]lazyRows
}

type lazyRows struct {
	once sync.Once
	rows sortedRows
}

type sortedRows struct {
	asc, desc, ascOnline, descOnline []*FarmerStatus
}

// sorted returns the view's orders by sortKeys[k], sorting them on the
// first call.
func (v *statusView) sorted(k int) *sortedRows {
	l := &v.keys[k]
	l.once.Do(func() {
		key := sortKeys[k]
		asc := slices.Clone(v.rows)
		slices.SortFunc(asc, compareBy(key))
		desc := descending(asc, key)
		l.rows = sortedRows{asc: asc, desc: desc, ascOnline: onlineOnly(asc), descOnline: onlineOnly(desc)}
	})
	return &l.rows
}

// askedFor is how long after a list query by a key each rebuild still
// sorts by that key itself, so that the queries do not wait for it.
const askedFor = time.Minute

// statusIndex answers status list queries without touching the farmers:
// token actors publish their sources as they change, and a timer rebuilds
// the view every refresh period. A list is therefore at most one refresh
// period (plus one rebuild) stale; /status/show asks the token actor and
// is exact.
//
// A rebuild sorts only by the keys queried in the last askedFor; any other
// order is sorted by the first query that needs it. At 100k farmers
// sorting by all seven keys took over a second of CPU at every refresh
// (BenchmarkStatusRebuild), whether or not anyone looked.
type statusIndex struct {
	mu      sync.Mutex
	sources map[string]*statusSource
	dirty   bool
	// timed counts the sources whose rows change with time alone
	// (statusSource.timed): while it is 0 and nothing was put or removed,
	// a rebuild would give the same view and is skipped.
	timed int
	view  atomic.Pointer[statusView]
	// asked holds, per key, when a list query last asked for it (unix
	// nanoseconds, 0 for never).
	asked [len(sortKeys)]atomic.Int64
}

func newStatusIndex() *statusIndex {
	x := &statusIndex{sources: map[string]*statusSource{}}
	x.view.Store(&statusView{})
	return x
}

func (x *statusIndex) put(s *statusSource) {
	x.mu.Lock()
	if old, ok := x.sources[s.id]; ok && old.timed() {
		x.timed--
	}
	if s.timed() {
		x.timed++
	}
	x.sources[s.id] = s
	x.dirty = true
	x.mu.Unlock()
}

func (x *statusIndex) remove(id string) {
	x.mu.Lock()
	if old, ok := x.sources[id]; ok && old.timed() {
		x.timed--
	}
	delete(x.sources, id)
	x.dirty = true
	x.mu.Unlock()
}

// rebuild computes a new view at now. The uptime of every farmer that
// ever had a contract changes with time, online or not (an offline
// farmer's falls as the time since its first contract grows), so a view
// is rebuilt even when no source changed; only when no source changed and
// no farmer ever had a contract is the last view still exact, and the
// rebuild returns at once.
func (x *statusIndex) rebuild(now time.Time) {
	x.mu.Lock()
	if !x.dirty && x.timed == 0 && x.view.Load().built {
		x.mu.Unlock()
		return
	}
	rows := make([]FarmerStatus, 0, len(x.sources))
	for _, s := range x.sources {
		rows = append(rows, s.at(now))
	}
	x.dirty = false
	x.mu.Unlock()
	v := &statusView{at: now, built: true, rows: make([]*FarmerStatus, len(rows))}
	for i := range rows {
		v.rows[i] = &rows[i]
	}
	for k := range sortKeys {
		if at := x.asked[k].Load(); at != 0 && now.Sub(time.Unix(0, at)) < askedFor {
			v.sorted(k)
		}
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
	k := slices.Index(sortKeys[:], q.SortBy)
	if k < 0 {
		return nil, &sluice.Error{Kind: sluice.ErrInvalid, Message: sluice.MsgInvalidSort}
	}
	// Note the query, at most once a second (every query writing the same
	// word would make the queries contend for it).
	if now := time.Now().UnixNano(); now-x.asked[k].Load() > int64(time.Second) {
		x.asked[k].Store(now)
	}
	s := x.view.Load().sorted(k)
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
