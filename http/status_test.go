package http_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
)

// farmersOf lists the ids of a status reply.
func farmersOf(t *testing.T, r reply) []string {
	t.Helper()
	rows, ok := r.body["farmers"].([]any)
	if r.code != 200 || !ok {
		t.Fatalf("status list: %d %s", r.code, r.raw)
	}
	var ids []string
	for _, row := range rows {
		ids = append(ids, row.(map[string]any)["id"].(string))
	}
	return ids
}

func TestStatusRoutes(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{Engine: actors.Config{
		Terms: sluice.Terms{Interval: time.Minute}, StatusRefresh: 100 * time.Millisecond,
	}})
	a := newFarmer(t, n) // online: holds a contract
	a.chunks(32768)
	b := newFarmer(t, n) // offline: no contract
	ida, idb := sluiceFarmerID(t, a.token), sluiceFarmerID(t, b.token)
	byID := []string{ida, idb}
	slices.Sort(byID)

	// The list is rebuilt every 100ms: wait (bounded) for both farmers.
	deadline := time.Now().Add(10 * time.Second)
	for len(farmersOf(t, do(t, "GET", n.API+"/status/list", nil))) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("farmers never appeared in the status list")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for path, want := range map[string][]string{
		"/status/list":                        byID,
		"/status/list/":                       byID,
		"/status/list/1":                      byID[:1],
		"/status/list/1/1":                    byID[1:],
		"/status/list/1/5":                    nil,
		"/status/list/online":                 {ida},
		"/status/list/online/1/0":             {ida},
		"/status/list/by/id":                  byID,
		"/status/list/by/d/id":                {byID[1], byID[0]},
		"/status/list/by/contracts":           {idb, ida},
		"/status/list/by/d/contracts":         {ida, idb},
		"/status/list/by/d/size/1":            {ida},
		"/status/list/by/d/size/1/1":          {idb},
		"/status/list/online/by/d/uptime/25":  {ida},
		"/status/list/by/online/2/0":          {idb, ida},
		"/status/list/online/by/heartbeats/1": {ida},
		// Limit 0 is the original's LIMIT 0: no rows, not an error.
		"/status/list/0":                    nil,
		"/status/list/0/3":                  nil,
		"/status/list/online/by/d/uptime/0": nil,
	} {
		got := farmersOf(t, do(t, "GET", n.API+path, nil))
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %v, want %v", path, got, want)
		}
	}
	for path, code := range map[string]int{
		"/status/list/by/nope":     400,
		"/status/list/by/d/nope/2": 400,
		"/status/list/by/nope/0":   400,
		"/status/list/by/nope/x":   400,
		"/status/list/-1":          400,
		"/status/list/x":           400,
		"/status/list/2/-1":        400,
		"/status/list/2/1/extra":   404,
		"/status/show/nobody":      404,
	} {
		r := do(t, "GET", n.API+path, nil)
		wantError(t, r, code, "")
	}
	wantError(t, do(t, "GET", n.API+"/status/list/by/nope", nil), 400, "Invalid sort.")
	wantError(t, do(t, "GET", n.API+"/status/list/by/nope/0", nil), 400, "Invalid sort.")
	wantError(t, do(t, "GET", n.API+"/status/list/by/d/nope/x", nil), 400, "Invalid sort.")
	wantError(t, do(t, "GET", n.API+"/status/show/nobody", nil), 404, "Nonexistent farmer id.")

	r := do(t, "GET", n.URL+"/api/downstream/status/show/"+ida, nil)
	if r.code != 200 || r.str("id") != ida || r.body["online"] != true || r.body["contracts"] != 1.0 ||
		r.body["size"] != 32768.0 || r.str("address") != addr || len(r.str("ip_hash")) != 32 {
		t.Fatalf("show: %d %s", r.code, r.raw)
	}
	if _, err := time.Parse(time.RFC1123, r.str("last_due")); err != nil {
		t.Fatalf("last_due %q is not an RFC 1123 date", r.str("last_due"))
	}
	if loc, present := r.body["location"]; !present || loc != nil {
		t.Fatalf("location without a GeoIP database: %v, want null", loc)
	}
	r = do(t, "GET", n.API+"/status/show/"+idb, nil)
	if r.body["uptime"] != 0.0 || r.body["online"] != false || r.body["last_due"] != nil {
		t.Fatalf("farmer without contracts: %s", r.raw)
	}
}

func TestClientAddress(t *testing.T) {
	newFrom := func(n *nodetest.Node, xff string) reply {
		return do(t, "GET", n.API+"/new/"+addr, nil, "X-Forwarded-For", xff)
	}
	const full = "IP Disallowed, only 1 tokens are permitted per IP address"
	engine := actors.Config{MaxTokensPerIP: 1}

	t.Run("untrusted peer: X-Forwarded-For is ignored", func(t *testing.T) {
		n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{Engine: engine})
		if r := newFrom(n, "203.0.113.1"); r.code != 200 {
			t.Fatalf("first token: %s", r.raw)
		}
		wantError(t, newFrom(n, "203.0.113.2"), 400, full)
	})
	t.Run("trusted proxy: the client is the right-most untrusted hop", func(t *testing.T) {
		n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{Engine: engine,
			HTTP: sluicehttp.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}})
		if r := newFrom(n, "203.0.113.1"); r.code != 200 {
			t.Fatalf("first token: %s", r.raw)
		}
		wantError(t, newFrom(n, "203.0.113.1"), 400, full)
		// A spoofed left-most entry does not help; a second proxy hop is skipped.
		wantError(t, newFrom(n, "198.51.100.9, 203.0.113.1, 10.1.2.3"), 400, full)
		if r := newFrom(n, "203.0.113.2"); r.code != 200 {
			t.Fatalf("another client: %s", r.raw)
		}
		// IPv6 clients behind the proxy count per /64.
		if r := newFrom(n, "2001:db8:aa:bb::1"); r.code != 200 {
			t.Fatalf("IPv6 client: %s", r.raw)
		}
		wantError(t, newFrom(n, "2001:db8:aa:bb::2"), 400, full)
	})
	t.Run("IPv6 listener", func(t *testing.T) {
		n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{Engine: engine, Listen: "[::1]:0"})
		if r := do(t, "GET", n.API+"/new/"+addr, nil); r.code != 200 {
			t.Fatalf("token over IPv6: %s", r.raw)
		}
		wantError(t, do(t, "GET", n.API+"/new/"+addr, nil), 400, full)
	})
}

func TestTokenRateLimitOverHTTP(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{Engine: actors.Config{TokenRate: 0.001, TokenBurst: 2}})
	f := newFarmer(t, n)
	for range 2 {
		if r := do(t, "GET", f.api+"/heartbeat/"+f.token, nil); r.code != 200 {
			t.Fatalf("within the burst: %s", r.raw)
		}
	}
	res, err := httpGet(f.api + "/heartbeat/" + f.token)
	if err != nil {
		t.Fatal(err)
	}
	secs, _ := strconv.Atoi(res.Header.Get("Retry-After"))
	if res.StatusCode != 429 || secs < 1 {
		t.Fatalf("over the limit: %d Retry-After %q, want 429 with a Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

// farmerNode is a node on a store the test reopens: stop ends it (the
// test's end does too), and another node can start on the same store.
type farmerNode struct {
	*nodetest.Node
	stop func()
}

func startFarmerNode(t *testing.T, store actors.Store, cfg actors.Config) *farmerNode {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	m := metrics.New()
	w := persistence.NewWriter(store, persistence.WriterOptions{})
	e, err := actors.Start(context.Background(), cfg, store, w, m, log)
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	srv := sluicehttp.New(sluicehttp.Config{}, m, log)
	srv.SetFarmers(e)
	hs := httptest.NewServer(srv)
	var once sync.Once
	n := &farmerNode{Node: &nodetest.Node{URL: hs.URL, API: hs.URL + "/api/downstream/v1", Engine: e, Metrics: m, Store: store},
		stop: func() {
			once.Do(func() {
				hs.Close()
				e.Stop()
				w.Close()
				store.Close()
			})
		}}
	t.Cleanup(n.stop)
	return n
}

// waitFor polls cond (bounded: a loaded machine is slow, but a broken
// node must not hang the test).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLastDueAcrossRestart: last_due is the due time of the farmer's
// latest challenge (the original's MAX(contracts.due)), including one its
// contract issued by itself, and a restarted node shows the same, also
// when none of the farmer's contracts is live any more (the original
// dashboard drops farmers whose last_due is null or over 3 h old).
func TestLastDueAcrossRestart(t *testing.T) {
	cfg := actors.Config{Terms: sluice.Terms{Interval: 2 * time.Second, Challenges: 256}, StatusRefresh: 50 * time.Millisecond}
	for _, s := range nodetest.Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			open := s.At(t)
			n := startFarmerNode(t, open(), cfg)
			ctx := context.Background()
			f := newFarmer(t, n.Node)
			raw, err := sluice.ParseToken(f.token)
			if err != nil {
				t.Fatal(err)
			}
			id := raw.FarmerID()
			c := f.chunks(32768)[0]
			h, _ := sluice.ParseFileHash(c.FileHash)
			first, err := n.Engine.Challenge(ctx, raw, h)
			if err != nil || first.Err != nil {
				t.Fatalf("challenge: %+v %v", first, err)
			}
			if r := f.answer(c.FileHash, f.prove(c, c.Challenge)); r.code != 200 {
				t.Fatalf("answer: %d %s", r.code, r.raw)
			}
			want := first.Due.Add(cfg.Terms.Interval) // the next challenge's
			stats := func() actors.FarmerStatus {
				st, err := n.Engine.Stats(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			// At the first due time the contract issues the next challenge
			// by itself, and last_due follows while the contract is live.
			var st actors.FarmerStatus
			waitFor(t, "last_due to move", func() bool { st = stats(); return !st.LastDue.Equal(first.Due) })
			if !st.LastDue.Equal(want) || st.Contracts != 1 {
				t.Fatalf("after the first due time: last_due %v with %d live contracts, want %v with 1", st.LastDue, st.Contracts, want)
			}
			wire := want.UTC().Format(http.TimeFormat)
			check := func(when string) {
				t.Helper()
				if r := do(t, "GET", n.API+"/status/show/"+id, nil); r.str("last_due") != wire {
					t.Fatalf("%s: /status/show last_due %s, want %q", when, r.raw, wire)
				}
				waitFor(t, when+": the list's last_due", func() bool {
					r := do(t, "GET", n.API+"/status/list", nil)
					rows, _ := r.body["farmers"].([]any)
					return len(rows) == 1 && rows[0].(map[string]any)["last_due"] == wire
				})
			}
			check("the next challenge issued")

			// Unanswered, the contract expires; then the node restarts.
			waitFor(t, "the contract to expire", func() bool {
				st, _ := n.Engine.Stats(ctx, id)
				return st.Contracts == 0
			})
			n.stop()
			n = startFarmerNode(t, open(), cfg)
			if got := stats().LastDue; !got.Equal(want) {
				t.Fatalf("after a restart: last_due %v, want %v", got, want)
			}
			check("after a restart")
		})
	}
}
