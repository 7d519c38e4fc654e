package http_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/microservice"
)

// rawReply is a reply whose body may be any JSON (or none).
type rawReply struct {
	code  int
	ctype string
	raw   []byte
}

func send(t *testing.T, method, url, body string) rawReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return rawReply{code: res.StatusCode, ctype: res.Header.Get("Content-Type"), raw: raw}
}

// wantUploaderShape checks r is code with exactly {"error": msg} as JSON
// (any message when msg is empty).
func wantUploaderShape(t *testing.T, what string, r rawReply, code int, msg string) {
	t.Helper()
	var body map[string]any
	err := json.Unmarshal(r.raw, &body)
	got, _ := body["error"].(string)
	if r.code != code || r.ctype != "application/json" || err != nil || len(body) != 1 || got == "" || (msg != "" && got != msg) {
		t.Errorf("%s: got %d %q %s, want %d application/json {\"error\": %q}", what, r.code, r.ctype, r.raw, code, msg)
	}
}

// wantFarmerShape checks r is code with {"status": "error", "message"}.
func wantFarmerShape(t *testing.T, what string, r rawReply, code int, msg string) {
	t.Helper()
	var body map[string]any
	err := json.Unmarshal(r.raw, &body)
	if r.code != code || r.ctype != "application/json" || err != nil || len(body) != 2 || body["status"] != "error" || body["message"] != msg {
		t.Errorf("%s: got %d %q %s, want %d application/json {\"status\": \"error\", \"message\": %q}", what, r.code, r.ctype, r.raw, code, msg)
	}
}

// TestUnknownRoutesAnswerInTheirAPIsFormat: an unknown route or a wrong
// method answers in the error format of the API its path belongs to.
func TestUnknownRoutesAnswerInTheirAPIsFormat(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/getQuote"},
		{"POST", "/getHistory"},
		{"DELETE", "/upload"},
		{"PUT", "/getStatus/"},
	} {
		wantUploaderShape(t, c.method+" "+c.path, send(t, c.method, n.URL+c.path, ""), 405, "Method not allowed on this route.")
	}
	for _, path := range []string{"//getStatus", "/nope", "/getQuotes", "/api/downstreamer", "/api"} {
		wantUploaderShape(t, "GET "+path, send(t, "GET", n.URL+path, ""), 404, "No such route.")
	}
	for _, c := range []struct{ method, path string }{
		{"PUT", "/api/downstream/v1/answer/00"},
		{"POST", "/api/downstream/status/list"},
		{"POST", "/api/downstream/heartbeat/00"},
	} {
		wantFarmerShape(t, c.method+" "+c.path, send(t, c.method, n.URL+c.path, ""), 405, "Method not allowed on this route.")
	}
	for _, path := range []string{"/api/downstream/nope", "/api/downstream/v1/status/nope", "/api/downstream/v2/new/x", "/api/downstream/v1//status/list"} {
		wantFarmerShape(t, "GET "+path, send(t, "GET", n.URL+path, ""), 404, "No such route.")
	}
}

// privateNode serves the private listener alone (no engine: registration
// needs only the registry) and returns its URL and the registrar's key.
func privateNode(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	registrar, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	store := nodetest.Stores(t)[0].Open(t)
	t.Cleanup(func() { store.Close() })
	reg, err := microservice.NewRegistry(context.Background(), store, microservice.RegistryConfig{
		Allowed: []common.Address{crypto.PubkeyToAddress(registrar.PublicKey)}, Reserved: []string{"sluice"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	srv := sluicehttp.New(sluicehttp.Config{}, metrics.New(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	hs := httptest.NewServer(srv.Private(reg))
	t.Cleanup(hs.Close)
	return hs.URL, registrar
}

// signHex signs text with EIP-191 and writes R‖S‖V in hex, V 27/28.
func signHex(t *testing.T, key *ecdsa.PrivateKey, text string) string {
	t.Helper()
	sig, err := crypto.Sign(accounts.TextHash([]byte(text)), key)
	if err != nil {
		t.Fatal(err)
	}
	sig[64] += 27
	return "0x" + hex.EncodeToString(sig)
}

// twinHex is the malleable twin of a hex R‖S‖V signature (V 27/28): s
// replaced by n−s, V flipped. crypto.SigToPub recovers the same signer.
func twinHex(t *testing.T, sig string) string {
	t.Helper()
	raw, err := hex.DecodeString(strings.TrimPrefix(sig, "0x"))
	if err != nil || len(raw) != 65 {
		t.Fatalf("twinHex(%q): not 65 bytes of hex", sig)
	}
	s := new(big.Int).Sub(crypto.S256().Params().N, new(big.Int).SetBytes(raw[32:64]))
	s.FillBytes(raw[32:64])
	raw[64] = 27 + 28 - raw[64]
	return "0x" + hex.EncodeToString(raw)
}

// TestPrivateListenerErrors: /register's refusals, its oversized body,
// a wrong method and an unknown route are {"error": ...} JSON with the
// status codes of the real backend; successes stay JSON strings.
func TestPrivateListenerErrors(t *testing.T) {
	base, registrar := privateNode(t)
	const msURL = "http://127.0.0.1:9/"
	good := signHex(t, registrar, msURL)
	other, _ := crypto.GenerateKey()
	reg := func(typ, sig string) string {
		b, _ := json.Marshal(map[string]any{"type": typ, "description": "d", "url": msURL, "signature": sig,
			"payment": []any{map[string]any{"chainId": "1", "acceptedTokens": []any{map[string]string{"T": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}}}}})
		return string(b)
	}
	for _, c := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"not JSON", "type=x", 400, "Invalid input data."},
		{"no signature", `{"type": "x", "url": "` + msURL + `"}`, 400, "Invalid input data."},
		{"garbage signature", reg("x", "0x1234"), 400, "Invalid signature."},
		{"high-S signature", reg("x", twinHex(t, good)), 400, "Invalid signature: a malleable (high-S) signature; sign again with a standard wallet."},
		{"not allowed", reg("x", signHex(t, other, msURL)), 403, "Registration request received from non-approved address."},
		{"reserved", reg("sluice", good), 400, "Chosen storage type is reserved by this node."},
		{"too large", `{"type": "` + strings.Repeat("x", 1<<20) + `"}`, 413, "Request body too large."},
	} {
		wantUploaderShape(t, c.name, send(t, "POST", base+"/register", c.body), c.code, c.msg)
	}
	wantUploaderShape(t, "GET /register", send(t, "GET", base+"/register", ""), 405, "Method not allowed on this route.")
	wantUploaderShape(t, "GET /nope", send(t, "GET", base+"/nope", ""), 404, "No such route.")

	for _, c := range []struct {
		code int
		want string
	}{{201, `"Desired storage created."`}, {200, `"Chosen storage type is already active and registered."`}} {
		r := send(t, "POST", base+"/register/", reg("arweave", good))
		if r.code != c.code || r.ctype != "application/json" || strings.TrimSpace(string(r.raw)) != c.want {
			t.Errorf("register: got %d %q %s, want %d %s", r.code, r.ctype, r.raw, c.code, c.want)
		}
	}
}

// TestRegisterFieldLimits: a registration whose type, description or URL
// is over its limit is a 400 "Invalid input data: ..." on the private
// listener, before the store is asked (a 100,000-character type was a 503:
// the store refuses such a key); a type at the limit registers.
func TestRegisterFieldLimits(t *testing.T) {
	base, registrar := privateNode(t)
	const msURL = "http://127.0.0.1:9/"
	good := signHex(t, registrar, msURL)
	reg := func(typ, desc, url string) string {
		b, _ := json.Marshal(map[string]any{"type": typ, "description": desc, "url": url, "signature": good})
		return string(b)
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, c := range []struct{ name, body, msg string }{
		{"huge type", reg(long(100_000), "d", msURL), "Invalid input data: type is longer than 64 bytes."},
		{"long type", reg(long(microservice.MaxTypeLen+1), "d", msURL), "Invalid input data: type is longer than 64 bytes."},
		{"long description", reg("x", long(microservice.MaxDescriptionLen+1), msURL), "Invalid input data: description is longer than 1024 bytes."},
		{"long url", reg("x", "d", msURL+long(microservice.MaxURLLen)), "Invalid input data: url is longer than 2048 bytes."},
	} {
		wantUploaderShape(t, c.name, send(t, "POST", base+"/register", c.body), 400, c.msg)
	}
	r := send(t, "POST", base+"/register", reg(long(microservice.MaxTypeLen), long(microservice.MaxDescriptionLen), msURL))
	if r.code != 201 || strings.TrimSpace(string(r.raw)) != `"Desired storage created."` {
		t.Errorf("register at the limits: got %d %s, want 201 \"Desired storage created.\"", r.code, r.raw)
	}
}
