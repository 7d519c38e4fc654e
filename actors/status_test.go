package actors

import (
	"context"
	"errors"
	"math"
	"math/big"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
)

func startWith(t *testing.T, store *memStore, cfg Config) *node {
	t.Helper()
	if cfg.Terms.Interval == 0 {
		cfg.Terms = sluice.Terms{Interval: time.Minute}
	}
	if len(cfg.ChunkSizes) == 0 {
		cfg.ChunkSizes = []int64{32 << 10}
	}
	w := persistence.NewWriter(store, persistence.WriterOptions{})
	e, err := Start(context.Background(), cfg, store, w, metrics.New(), zap.NewNop())
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	return &node{Engine: e, writer: w}
}

func ids(rows []FarmerStatus) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

// TestStatusScenario follows the original node's status test
// (TestDownstreamNodeStatus) with a controlled clock: farmer x had one
// contract that expired long ago; farmer y answered once, let that
// contract expire, and holds a live one now; farmer z has no contract.
func TestStatusScenario(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startWith(t, newMemStore(), Config{})
		defer n.stop()
		ctx := context.Background()
		t0 := time.Now()
		newToken := func(addr string) sluice.RawToken {
			raw, err := n.NewToken(ctx, TokenRequest{Address: addr, IP: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
		chunk := func(raw sluice.RawToken) sluice.Contract {
			cs, err := n.Chunks(ctx, raw, "192.0.2.1", 32<<10)
			if err != nil || len(cs) != 1 {
				t.Fatalf("chunks: %v %v", cs, err)
			}
			return cs[0]
		}
		x := newToken("0x0000000000000000000000000000000000000001")
		y := newToken("0x0000000000000000000000000000000000000002")
		chunk(x)
		c1 := chunk(y)
		if err := n.Answer(ctx, y, c1.FileHash, prove(t, c1, c1.Challenge)); err != nil {
			t.Fatal(err)
		}
		// x's contract expires at +1 min, y's first at +2 min; y takes a
		// new one at +20.5 min; look at +21 min (and one status refresh).
		time.Sleep(20*time.Minute + 30*time.Second)
		chunk(y)
		sleepUntil(t0.Add(21*time.Minute + 2*time.Second)) // one status refresh later
		X, Y := x.FarmerID(), y.FarmerID()

		list := func(q StatusQuery) []string {
			t.Helper()
			rows, err := n.Status(q)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			return ids(rows)
		}
		want := func(q StatusQuery, w ...string) {
			t.Helper()
			if got := list(q); !slices.Equal(got, w) {
				t.Fatalf("%+v: got %v, want %v", q, got, w)
			}
		}
		byID := []string{X, Y}
		slices.Sort(byID)
		want(StatusQuery{}, byID...)
		want(StatusQuery{SortBy: "id", Descending: true}, byID[1], byID[0])
		want(StatusQuery{Limit: 1}, byID[0])
		want(StatusQuery{Limit: 1, Page: 1}, byID[1])
		want(StatusQuery{Limit: 1, Page: 2})
		want(StatusQuery{OnlineOnly: true}, Y)
		want(StatusQuery{OnlineOnly: true, Limit: 1, Page: 0}, Y) // the filter comes before the limit
		for _, key := range []string{"address", "heartbeats", "contracts", "size", "online", "uptime"} {
			want(StatusQuery{SortBy: key}, X, Y)
			want(StatusQuery{SortBy: key, Descending: true}, Y, X)
		}
		if _, err := n.Status(StatusQuery{SortBy: "nope"}); !errors.Is(err, sluice.ErrInvalid) || sluice.Message(err) != "Invalid sort." {
			t.Fatalf("invalid sort: got %v, want %q", err, "Invalid sort.")
		}

		sx, _ := n.Stats(ctx, X)
		sy, _ := n.Stats(ctx, Y)
		// x: up 60 s of 1262 s; y: up 120 s + 32 s of 1262 s.
		if sx.Uptime != 4.75 || sx.Online || sx.Contracts != 0 || sx.Heartbeats != 0 {
			t.Fatalf("x: %+v, want uptime 4.75, offline, no contracts, no heartbeats", sx)
		}
		if sy.Uptime != 12.04 || !sy.Online || sy.Contracts != 1 || sy.Size != 32<<10 || sy.Heartbeats != 1 {
			t.Fatalf("y: %+v, want uptime 12.04, online, 1 contract of 32 KiB, 1 heartbeat", sy)
		}
		if sy.IPHash == "" || sy.IPHash == "192.0.2.1" || sy.IPHash != sx.IPHash {
			t.Fatalf("ip hash: %q and %q, want one keyed hash for one IP", sx.IPHash, sy.IPHash)
		}
		rows, _ := n.Status(StatusQuery{SortBy: "id"})
		for _, r := range rows {
			s, _ := n.Stats(ctx, r.ID)
			if s != r { // the list and show agree (the clock has not moved)
				t.Fatalf("list row %+v != show %+v", r, s)
			}
		}

		// A farmer with no contract: uptime 0, first by uptime.
		z := newToken("0x0000000000000000000000000000000000000003").FarmerID()
		sleepUntil(time.Now().Add(2 * time.Second))
		want(StatusQuery{SortBy: "uptime"}, z, X, Y)
		want(StatusQuery{SortBy: "uptime", Limit: 1}, z)
		want(StatusQuery{SortBy: "uptime", Limit: 1, Page: 1}, X)
		if _, err := n.Stats(ctx, "invalidfarmer"); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("unknown farmer: got %v, want not found", err)
		}
	})
}

func TestUptimeCountsOverlapsOnceAndGapsAsDowntime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startWith(t, newMemStore(), Config{})
		defer n.stop()
		ctx := context.Background()
		t0 := time.Now()
		raw, _ := n.NewToken(ctx, TokenRequest{Address: "0x0000000000000000000000000000000000000001", IP: "192.0.2.1"})
		// Two overlapping contracts, both expiring unanswered at +1 min,
		// then a gap of 2 min, then one contract live until +5 min.
		if cs, _ := n.Chunks(ctx, raw, "192.0.2.1", 64<<10); len(cs) != 2 {
			t.Fatalf("got %d contracts, want 2", len(cs))
		}
		time.Sleep(3 * time.Minute)
		n.Chunks(ctx, raw, "192.0.2.1", 32<<10)
		sleepUntil(t0.Add(5 * time.Minute))
		s, _ := n.Stats(ctx, raw.FarmerID())
		// Up: [0,1] and [3,4] of 5 minutes.
		if s.Uptime != 40 || s.Online {
			t.Fatalf("got uptime %v online %v, want 40 and offline", s.Uptime, s.Online)
		}
	})
}

func TestTokensPerIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startWith(t, newMemStore(), Config{MaxTokensPerIP: 2})
		defer n.stop()
		ctx := context.Background()
		addr := "0x0000000000000000000000000000000000000001"
		take := func(ip string) (sluice.RawToken, error) {
			return n.NewToken(ctx, TokenRequest{Address: addr, IP: ip})
		}
		a, _ := take("192.0.2.1")
		take("192.0.2.1")
		if _, err := take("192.0.2.1"); err == nil || sluice.Message(err) != "IP Disallowed, only 2 tokens are permitted per IP address" {
			t.Fatalf("third token from one IP: got %v", err)
		}
		// IPv6 counts by /64, IPv4-mapped IPv6 as IPv4.
		take("2001:db8:1:1::1")
		take("2001:db8:1:1::2")
		if _, err := take("2001:db8:1:1:ffff::3"); err == nil {
			t.Fatal("third token from one IPv6 /64 accepted")
		}
		if _, err := take("2001:db8:1:2::1"); err != nil {
			t.Fatalf("another /64: %v", err)
		}
		if _, err := take("::ffff:192.0.2.1"); err == nil {
			t.Fatal("IPv4-mapped address not counted with its IPv4 address")
		}
		// A deleted token frees its slot at once.
		if err := n.DeleteToken(ctx, a); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := take("192.0.2.1"); err != nil {
			t.Fatalf("after a delete: %v", err)
		}
		// A token used from a new IP moves there only if that IP has room.
		b, _ := take("198.51.100.7")
		if _, err := n.Chunks(ctx, b, "192.0.2.1", 32<<10); err == nil {
			t.Fatal("moved a token to a full IP")
		}
		if _, err := n.Chunks(ctx, b, "203.0.113.9", 32<<10); err != nil {
			t.Fatalf("move to a free IP: %v", err)
		}
		if _, err := take("198.51.100.7"); err != nil {
			t.Fatalf("the old IP kept the moved token's slot: %v", err)
		}
	})
}

func TestTokenRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startWith(t, newMemStore(), Config{TokenRate: 1, TokenBurst: 2})
		defer n.stop()
		ctx := context.Background()
		raw, _ := n.NewToken(ctx, TokenRequest{Address: "0x0000000000000000000000000000000000000001", IP: "192.0.2.1"})
		for range 2 {
			if _, err := n.Authenticate(ctx, raw); err != nil {
				t.Fatal(err)
			}
		}
		_, err := n.Authenticate(ctx, raw)
		var lim *sluice.LimitedError
		if !errors.As(err, &lim) || lim.RetryAfter != time.Second {
			t.Fatalf("over the limit: got %v, want a LimitedError with RetryAfter 1s", err)
		}
		time.Sleep(time.Second)
		if _, err := n.Authenticate(ctx, raw); err != nil {
			t.Fatalf("after Retry-After: %v", err)
		}
	})
}

func TestSignedRequestsCannotBeReplayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startWith(t, newMemStore(), Config{})
		ctx := context.Background()
		req := TokenRequest{Address: "0x0000000000000000000000000000000000000001", IP: "192.0.2.1", Message: "hello", Signed: true}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { _, errs[i] = n.NewToken(ctx, req) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrReplayed):
				t.Fatalf("concurrent replay: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of 8 identical signed requests got a token, want 1", ok)
		}
		n.stop()
		// Still refused after a restart: the signature is stored.
		n = startWith(t, n.store(), Config{})
		defer n.stop()
		if _, err := n.NewToken(ctx, req); !errors.Is(err, ErrReplayed) {
			t.Fatalf("replay after restart: got %v", err)
		}
		req.Message = "hello again"
		if _, err := n.NewToken(ctx, req); err != nil {
			t.Fatalf("a new message: %v", err)
		}
	})
}

func TestWhitelist(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		store.Write(context.Background(), []sluice.Record{
			{Kind: sluice.KindWhitelist, ID: "0x0000000000000000000000000000000000000001", Version: 1, Live: true, State: []byte("10000")},
			{Kind: sluice.KindWhitelist, ID: "0x0000000000000000000000000000000000000002", Version: 1, Live: true, State: []byte("9999")},
			{Kind: sluice.KindWhitelist, ID: "0x0000000000000000000000000000000000000003", Version: 2, Live: false, State: []byte("50000")},
		})
		n := startWith(t, store, Config{Whitelist: true, MinBalance: big.NewInt(10000)})
		defer n.stop()
		for addr, ok := range map[string]bool{
			"0x0000000000000000000000000000000000000001": true,
			"0x0000000000000000000000000000000000000002": false, // balance too low
			"0x0000000000000000000000000000000000000003": false, // dropped from the list
			"0x0000000000000000000000000000000000000004": false, // never listed
		} {
			_, err := n.NewToken(context.Background(), TokenRequest{Address: addr, IP: "192.0.2.1"})
			if ok != (err == nil) || (!ok && !errors.Is(err, ErrNotWhitelisted)) {
				t.Fatalf("%s: got %v, want allowed %v", addr, err, ok)
			}
		}
	})
}

// The reviewer's case: a farmer whose contract expired, nobody online.
// Its uptime keeps falling as the time since its first contract grows;
// the list shows what /status/show shows, not the value at the expiry.
func TestStatusListKeepsUptimeCurrentWhileNobodyIsOnline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startWith(t, newMemStore(), Config{}) // interval 1 min, refresh 2 s
		defer n.stop()
		ctx := context.Background()
		t0 := time.Now()
		raw, err := n.NewToken(ctx, TokenRequest{Address: "0x0000000000000000000000000000000000000001", IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		if cs, err := n.Chunks(ctx, raw, "192.0.2.1", 32<<10); err != nil || len(cs) != 1 {
			t.Fatalf("chunks: %v %v", cs, err)
		}
		for _, at := range []time.Duration{2 * time.Minute, 10 * time.Minute, time.Hour} {
			sleepUntil(t0.Add(at)) // on a refresh tick
			rows, err := n.Status(StatusQuery{})
			if err != nil || len(rows) != 1 {
				t.Fatalf("list: %v %v", rows, err)
			}
			show, err := n.Stats(ctx, raw.FarmerID())
			if err != nil {
				t.Fatal(err)
			}
			// Up for the first minute only.
			want := math.Round(100*float64(time.Minute)/float64(at)*100) / 100
			if rows[0] != show || show.Uptime != want || show.Online {
				t.Fatalf("at +%v: list %+v, show %+v, want both offline with uptime %v", at, rows[0], show, want)
			}
		}
	})
}

// last_due is the latest due time of the farmer's contracts (the original's
// MAX(contracts.due)): it moves when a contract issues its next challenge,
// and it survives restarts, with the contract live and after it closed.
func TestLastDueFollowsChallengesAndSurvivesRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startWith(t, store, Config{}) // interval 1 min, refresh 2 s
		defer func() { n.stop() }()        // the node running at the end
		ctx := context.Background()
		raw, err := n.NewToken(ctx, TokenRequest{Address: "0x0000000000000000000000000000000000000001", IP: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		cs, err := n.Chunks(ctx, raw, "192.0.2.1", 32<<10)
		if err != nil || len(cs) != 1 {
			t.Fatalf("chunks: %v %v", cs, err)
		}
		c := cs[0]
		check := func(when string, want time.Time) {
			t.Helper()
			show, err := n.Stats(ctx, raw.FarmerID())
			if err != nil {
				t.Fatal(err)
			}
			if !show.LastDue.Equal(want) {
				t.Fatalf("%s: show last_due %v, want %v", when, show.LastDue, want)
			}
			sleepUntil(time.Now().Add(2 * time.Second)) // one status refresh
			rows, err := n.Status(StatusQuery{})
			if err != nil || len(rows) != 1 || !rows[0].LastDue.Equal(want) {
				t.Fatalf("%s: list %+v (%v), want last_due %v", when, rows, err, want)
			}
		}
		check("a new contract", c.Due)
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); err != nil {
			t.Fatal(err)
		}
		sleepUntil(c.Due) // the contract issues its next challenge
		next, err := n.Challenge(ctx, raw, c.FileHash)
		if err != nil || next.Err != nil || !next.Due.Equal(c.Due.Add(time.Minute)) {
			t.Fatalf("next challenge: %+v %v, want due %v", next, err, c.Due.Add(time.Minute))
		}
		check("the next challenge issued", next.Due)

		n.stop()
		n = startWith(t, store, Config{})
		check("restarted with the contract live", next.Due)

		sleepUntil(next.Due) // unanswered: the contract expires
		if st, _ := n.Stats(ctx, raw.FarmerID()); st.Contracts != 0 {
			t.Fatalf("after the due time: %d live contracts, want 0", st.Contracts)
		}
		check("the contract expired", next.Due)
		n.stop()
		time.Sleep(time.Hour)
		n = startWith(t, store, Config{})
		check("restarted with no live contract", next.Due)
	})
}
