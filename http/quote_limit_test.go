package http_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// TestGetQuoteRateLimit: getQuote takes QuoteBurst calls from one client
// address, then answers 429 in the uploader's error format with a
// Retry-After, makes no quote, and still serves other clients. Behind a
// trusted proxy the client is the forwarded address.
func TestGetQuoteRateLimit(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{HTTP: sluicehttp.Config{
		QuoteRate: 0.001, QuoteBurst: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	u := newEthUser()
	body, _ := json.Marshal(map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 5}},
		"duration": 60, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
	quote := func(client string) (int, string, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", n.URL+"/getQuote", bytes.NewReader(body))
		req.Header.Set("X-Forwarded-For", client)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("getQuote: %d, not JSON: %q", res.StatusCode, raw)
		}
		return res.StatusCode, res.Header.Get("Retry-After"), out
	}
	for i := range 2 {
		if code, _, out := quote("203.0.113.1"); code != 201 {
			t.Fatalf("quote %d of the burst: %d %v", i+1, code, out)
		}
	}
	code, retry, out := quote("203.0.113.1")
	// The bucket refills one call in 1000 s, less what the first calls took
	// (a slow run may take seconds).
	if secs, err := strconv.Atoi(retry); code != 429 || out["error"] != "Too many requests; slow down." || err != nil || secs < 900 || secs > 1000 {
		t.Fatalf("over the burst: %d %v, Retry-After %q; want 429 {error: Too many requests; slow down.}, Retry-After about 1000", code, out, retry)
	}
	if code, _, out := quote("203.0.113.2"); code != 201 {
		t.Fatalf("another client: %d %v", code, out)
	}
	nonce, sig := u.next("")
	hist := do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil)
	if got := len(hist.body["data"].([]any)); got != 3 {
		t.Fatalf("quotes in the history: %d, want 3 (none for the refused call): %s", got, hist.raw)
	}
}
