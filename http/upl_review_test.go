package http_test

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice/internal/nodetest"
)

// Tests for what a black-box review of the uploader API found.

// rawDo sends body as it is, with contentType, and returns the reply.
func rawDo(t *testing.T, method, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, raw
}

// wantErrorJSON checks a reply is code with a valid-JSON {"error"}.
func wantErrorJSON(t *testing.T, what string, code int, raw []byte, wantCode int) {
	t.Helper()
	var e map[string]string
	if code != wantCode || !utf8.Valid(raw) || json.Unmarshal(raw, &e) != nil || e["error"] == "" || len(e) != 1 {
		t.Fatalf("%s: got %d %q, want %d {\"error\": ...}", what, code, raw, wantCode)
	}
}

// registrarNode starts a node that takes registrations signed by the key
// it returns.
func registrarNode(t *testing.T) (*nodetest.Node, *ecdsa.PrivateKey) {
	registrar, _ := crypto.GenerateKey()
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{RegisterSigners: []common.Address{crypto.PubkeyToAddress(registrar.PublicKey)}})
	return n, registrar
}

// register registers typ at url with the payment options given.
func register(t *testing.T, n *nodetest.Node, registrar *ecdsa.PrivateKey, typ, url string, payment any) (int, []byte) {
	t.Helper()
	sig, _ := crypto.Sign(accounts.TextHash([]byte(url)), registrar)
	sig[64] += 27
	code, raw := doAny(t, "POST", n.Private+"/register", map[string]any{"type": typ, "description": typ,
		"url": url, "signature": "0x" + hex.EncodeToString(sig), "payment": payment})
	return code, raw
}

func TestQuoteBodyMustBeUTF8(t *testing.T) {
	n, _ := registrarNode(t)
	body := []byte("{\"type\":\"sluice\",\"files\":[{\"length\":13}],\"duration\":1,\"payment\":{\"chainId\":\"\xff\xfe\"},\"userAddress\":\"0xFFcf8FDEE72ac11b5c542428B35EEF5769C409f0\"}")
	code, raw := rawDo(t, "POST", n.URL+"/getQuote", "application/json", body)
	wantErrorJSON(t, "getQuote with invalid UTF-8", code, raw, 400)
}

func TestSignedPOSTBodies(t *testing.T) {
	n, _ := registrarNode(t)
	code, raw := doAny(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 5}},
		"duration": 60, "payment": map[string]any{"chainId": "1"}, "userAddress": "0xFFcf8FDEE72ac11b5c542428B35EEF5769C409f0"})
	var q struct{ QuoteID string }
	if json.Unmarshal(raw, &q); code != 201 || q.QuoteID == "" {
		t.Fatalf("getQuote: %d %s", code, raw)
	}
	good := `{"quoteId":"` + q.QuoteID + `"}`
	if code, raw := rawDo(t, "POST", n.URL+"/getStatus", "application/json", []byte(good)); code != 200 {
		t.Fatalf("POST getStatus: %d %s", code, raw)
	}
	for _, tc := range []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"trailing data", "/getStatus", good + " this is not json", 400, "Malformed JSON"},
		{"broken JSON", "/getStatus", `{"quoteId":"` + q.QuoteID + `", broken`, 400, "Malformed JSON"},
		{"wrong type", "/getStatus", `{"quoteId":12}`, 400, "quoteId"},
		{"invalid UTF-8", "/getStatus", "{\"quoteId\":\"\xff\"}", 400, "UTF-8"},
		{"empty body", "/getStatus", "", 400, "Missing query parameters"},
		{"trailing data", "/getLink", `{"quoteId":"x","nonce":1,"signature":"0x"}]`, 400, "Malformed JSON"},
		{"too large", "/getLink", `{"quoteId":"` + strings.Repeat("a", 70_000) + `"}`, 413, "too large"},
	} {
		code, raw := rawDo(t, "POST", n.URL+tc.path, "application/json", []byte(tc.body))
		wantErrorJSON(t, tc.path+": "+tc.name, code, raw, tc.code)
		if !strings.Contains(string(raw), tc.msg) {
			t.Fatalf("%s %s: %s, want a message with %q", tc.path, tc.name, raw, tc.msg)
		}
	}

	// The same parameters as a form body.
	const form = "application/x-www-form-urlencoded"
	if code, raw := rawDo(t, "POST", n.URL+"/getStatus", form, []byte("quoteId="+q.QuoteID)); code != 200 {
		t.Fatalf("POST getStatus with a form: %d %s", code, raw)
	}
	for _, tc := range []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"too large", "/getStatus", "quoteId=" + strings.Repeat("a", 70_000), 413, "too large"},
		{"too large", "/getLink", "quoteId=x&nonce=1&signature=" + strings.Repeat("a", 70_000), 413, "too large"},
		{"bad escape", "/getStatus", "quoteId=%zz", 400, "could not be parsed"},
		{"empty", "/getLink", "", 400, "Missing query parameters"},
	} {
		code, raw := rawDo(t, "POST", n.URL+tc.path, form, []byte(tc.body))
		wantErrorJSON(t, tc.path+": form "+tc.name, code, raw, tc.code)
		if !strings.Contains(string(raw), tc.msg) {
			t.Fatalf("%s form %s: %s, want a message with %q", tc.path, tc.name, raw, tc.msg)
		}
	}
}

// TestMicroserviceRedirectsAndGarbledReplies: a microservice's redirect is
// followed, as the Ocean backend's client follows it, but a loop of them
// is a bad gateway; a reply that is not valid UTF-8 is never relayed.
func TestMicroserviceRedirectsAndGarbledReplies(t *testing.T) {
	n, registrar := registrarNode(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"quoteId":"from-the-redirect","chainId":1,"tokenAddress":"0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889","tokenAmount":"1","approveAddress":"0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d"}`)
	}))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/getQuote", http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	loop := httptest.NewServer(nil)
	loop.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	t.Cleanup(loop.Close)
	badUTF8 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "{\"quoteId\":\"q\xff\",\"chainId\":1,\"tokenAddress\":\"0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889\",\"tokenAmount\":\"1\",\"approveAddress\":\"0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d\"}")
	}))
	t.Cleanup(badUTF8.Close)
	payment := []any{map[string]any{"chainId": 1, "acceptedTokens": []any{map[string]string{"T": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}}}}
	quote := func(typ, url string) (int, []byte) {
		if code, raw := register(t, n, registrar, typ, url, payment); code != 201 {
			t.Fatalf("register %s: %d %s", typ, code, raw)
		}
		return doAny(t, "POST", n.URL+"/getQuote", map[string]any{"type": typ, "files": []any{map[string]int{"length": 5}},
			"duration": 60, "payment": map[string]any{"chainId": "1"}, "userAddress": "0xFFcf8FDEE72ac11b5c542428B35EEF5769C409f0"})
	}
	if code, raw := quote("redirecting", redirect.URL+"/"); code != 201 || !strings.Contains(string(raw), "from-the-redirect") {
		t.Fatalf("getQuote through a redirect: %d %s, want the target's quote", code, raw)
	}
	code, raw := quote("looping", loop.URL+"/")
	wantErrorJSON(t, "getQuote on a redirect loop", code, raw, 502)
	code, raw = quote("garbled", badUTF8.URL+"/")
	wantErrorJSON(t, "getQuote with invalid UTF-8", code, raw, 502)
}

func TestRegisterChainIDsAsGetQuoteTakesThem(t *testing.T) {
	n, registrar := registrarNode(t)
	for i, id := range []any{json.RawMessage("1e400"), 1.5, -1, "", json.RawMessage("8e4"), nil, true} {
		payment := []any{map[string]any{"chainId": id, "acceptedTokens": []any{}}}
		code, raw := register(t, n, registrar, "bad"+string(rune('a'+i)), "http://127.0.0.1:1/", payment)
		wantErrorJSON(t, "register with chainId "+string(mustJSON(id)), code, raw, 400)
	}
	for i, id := range []any{80001, "80001", "sepolia"} {
		payment := []any{map[string]any{"chainId": id, "acceptedTokens": []any{}}}
		if code, raw := register(t, n, registrar, "good"+string(rune('a'+i)), "http://127.0.0.1:1/", payment); code != 201 {
			t.Fatalf("register with chainId %v: %d %s, want 201", id, code, raw)
		}
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// TestMethodsOnOpsAndFileRoutes: /metrics answers GET and HEAD only, and
// /ipfs/ refuses other methods with the message every route uses.
func TestMethodsOnOpsAndFileRoutes(t *testing.T) {
	n, _ := registrarNode(t)
	for _, m := range []string{"DELETE", "POST", "PUT"} {
		req, _ := http.NewRequest(m, n.URL+"/metrics", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		wantErrorJSON(t, m+" /metrics", res.StatusCode, raw, 405)
		if res.Header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("%s /metrics: Allow %q, want \"GET, HEAD\"", m, res.Header.Get("Allow"))
		}
	}
	if res, err := http.Head(n.URL + "/metrics"); err != nil || res.StatusCode != 200 {
		t.Fatalf("HEAD /metrics: %v %v", res, err)
	}
	code, raw := rawDo(t, "PUT", n.URL+"/ipfs/x", "", nil)
	wantErrorJSON(t, "PUT /ipfs/x", code, raw, 405)
	if !strings.Contains(string(raw), "Method not allowed on this route.") {
		t.Fatalf("PUT /ipfs/x: %s, want the message of every route", raw)
	}
}
