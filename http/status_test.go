package http_test

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
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
	} {
		got := farmersOf(t, do(t, "GET", n.API+path, nil))
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %v, want %v", path, got, want)
		}
	}
	for path, code := range map[string]int{
		"/status/list/by/nope":     400,
		"/status/list/by/d/nope/2": 400,
		"/status/list/0":           400,
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
