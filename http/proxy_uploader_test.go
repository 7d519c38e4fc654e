package http_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/microservice"
)

// strictService is a storage microservice as the Ocean ones behave where
// it matters here (reference section 5.1): one quote id per getQuote, a
// per-user nonce that each signed call (upload, getLink, getHistory) must
// raise, asynchronous statuses after the upload (set by the test), and
// error replies in its own format.
type strictService struct {
	mu        sync.Mutex
	lastNonce map[string]float64 // by quote id (one user per test)
	status    int
	fail      string // getStatus: "" answers status, else "404", "500" or "garbage"
	quotes    int
	quoteID   string // getQuote's quoteId, JSON-encoded, when set
	uploads   int
	links     []url.Values // getLink queries
	histories []url.Values // getHistory queries
}

func (s *strictService) nonceOK(n string) bool {
	v, err := strconv.ParseFloat(n, 64)
	if err != nil || v <= s.lastNonce[""] {
		return false
	}
	s.lastNonce[""] = v
	return true
}

func (s *strictService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.URL.Query()
	refuse := func(code int, msg string) {
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"message":%q}`, msg)
	}
	switch r.URL.Path {
	case "/getQuote":
		s.quotes++
		if s.quoteID != "" {
			fmt.Fprintf(w, `{"quoteId":%s,"tokenAmount":"123","approveAddress":"0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d"}`, s.quoteID)
			return
		}
		fmt.Fprintf(w, `{"quoteId":"%032x","chainId":80001,"tokenAddress":"0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889","tokenAmount":"123","approveAddress":"0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d"}`, s.quotes)
	case "/upload/":
		var b struct{ Nonce string }
		json.NewDecoder(r.Body).Decode(&b)
		if !s.nonceOK(b.Nonce) {
			refuse(403, "Invalid nonce.")
			return
		}
		s.uploads++
	case "/getStatus":
		switch s.fail {
		case "404":
			refuse(404, "Quote not found.")
		case "500":
			refuse(500, "Internal error.")
		case "garbage":
			io.WriteString(w, "<html>oops</html>")
		default:
			fmt.Fprintf(w, `{"status":%d}`, s.status)
		}
	case "/getLink":
		s.links = append(s.links, q)
		if !s.nonceOK(q.Get("nonce")) {
			refuse(403, "Invalid nonce.")
			return
		}
		io.WriteString(w, `[{"type":"arweave","transactionHash":"xg8aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa43"}]`)
	case "/getHistory":
		s.histories = append(s.histories, q)
		if !s.nonceOK(q.Get("nonce")) {
			refuse(403, "Invalid nonce.")
			return
		}
		io.WriteString(w, `{"type":"arweave","maxPages":7,"data":[{"type":"arweave","quoteId":"from-the-microservice"}]}`)
	default:
		refuse(404, "Not found.")
	}
}

func (s *strictService) set(status int, fail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.fail = status, fail
}

// proxyNode starts a node with strictService registered as "arweave".
func proxyNode(t *testing.T, s nodetest.Store) (*nodetest.Node, *strictService) {
	t.Helper()
	registrar, _ := crypto.GenerateKey()
	n := nodetest.Start(t, s.Open(t), nodetest.Options{RegisterSigners: []common.Address{crypto.PubkeyToAddress(registrar.PublicKey)}})
	ms := &strictService{lastNonce: map[string]float64{}}
	srv := httptest.NewServer(ms)
	t.Cleanup(srv.Close)
	sig, _ := crypto.Sign(accounts.TextHash([]byte(srv.URL+"/")), registrar)
	sig[64] += 27
	code, raw := doAny(t, "POST", n.Private+"/register", map[string]any{"type": "arweave", "description": "Arweave",
		"url": srv.URL + "/", "signature": "0x" + hex.EncodeToString(sig),
		"payment": []any{map[string]any{"chainId": 80001, "acceptedTokens": []any{map[string]string{"WMATIC": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}}}}})
	if code != 201 {
		t.Fatalf("register: got %d %s, want 201", code, raw)
	}
	return n, ms
}

func proxiedQuoteBody(user string) map[string]any {
	return map[string]any{"type": "arweave", "files": []any{map[string]int{"length": 5}}, "duration": 3600,
		"payment": map[string]any{"chainId": "80001", "tokenAddress": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}, "userAddress": user}
}

// TestBackendQuoteIDsThatCannotBeKeys: a quote id from a storage backend
// that the store could not key a record by (a NUL, which PostgreSQL text
// cannot hold, other control characters, or longer than the node takes)
// is the backend's invalid quote, 502, not a store failure; and it does
// not fail the quotes of other users committed with it.
func TestBackendQuoteIDsThatCannotBeKeys(t *testing.T) {
	for _, st := range nodetest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			n, ms := proxyNode(t, st)
			for _, id := range []string{`"a\u0000b"`, `"a\nb"`, `"` + strings.Repeat("q", microservice.MaxQuoteIDLen+1) + `"`} {
				ms.mu.Lock()
				ms.quoteID = id
				ms.mu.Unlock()
				r := do(t, "POST", n.URL+"/getQuote", proxiedQuoteBody("0x3b9ff1e4b40b3cc9ddc0fe7d2e9e4bcd1ad6aa4c"))
				if r.code != 502 || !strings.Contains(r.str("error"), "invalid quote") {
					t.Fatalf("backend quote id %.40s: got %d %v, want 502 invalid quote", id, r.code, r.body)
				}
			}
			ms.mu.Lock()
			ms.quoteID = `"` + strings.Repeat("q", microservice.MaxQuoteIDLen) + `"`
			ms.mu.Unlock()
			if r := do(t, "POST", n.URL+"/getQuote", proxiedQuoteBody("0x3b9ff1e4b40b3cc9ddc0fe7d2e9e4bcd1ad6aa4c")); r.code != 201 {
				t.Fatalf("backend quote id of the longest length taken: got %d %.80v, want 201", r.code, r.body)
			}
		})
	}
}

// TestProxiedStatusAndLink: once the files are handed to the
// microservice, every getStatus asks it and answers what it says (a first
// 100 does not stick), its errors come back as errors, and getLink
// forwards the request's own nonce and signature.
func TestProxiedStatusAndLink(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n, ms := proxyNode(t, s)
		u := newEthUser()
		q := do(t, "POST", n.URL+"/getQuote", proxiedQuoteBody(u.addr))
		if q.code != 201 {
			t.Fatalf("getQuote: got %d %s, want 201", q.code, q.raw)
		}
		id := q.str("quoteId")
		ms.set(100, "")
		nonce, sig := u.next(id)
		if r := uploadTo(t, n.URL, id, nonce, sig, []byte("hello")); r.code != 200 {
			t.Fatalf("upload: got %d %s, want 200", r.code, r.raw)
		}
		// The hand-off is asynchronous: wait (bounded) until the
		// microservice's status shows through.
		status := func() reply { return do(t, "GET", n.URL+"/getStatus?quoteId="+id, nil) }
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if r := status(); r.code == 200 && r.body["status"] == 100.0 {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("getStatus after the upload: got %d %s, want the microservice's 100", r.code, r.raw)
			}
		}
		for _, want := range []int{101, 300, 202} {
			ms.set(want, "")
			if r := status(); r.code != 200 || r.body["status"] != float64(want) {
				t.Fatalf("getStatus with the microservice at %d: got %d %s", want, r.code, r.raw)
			}
		}
		// POST too, as the spec allows.
		if r := do(t, "POST", n.URL+"/getStatus", map[string]string{"quoteId": id}, "Content-Type", "application/json"); r.code != 200 || r.body["status"] != 202.0 {
			t.Fatalf("POST getStatus: got %d %s, want 202", r.code, r.raw)
		}

		// Its errors are relayed, never hidden behind the stored status.
		ms.set(0, "404")
		wantUploaderError(t, status(), 404, "Quote not found.")
		ms.set(0, "500")
		wantUploaderError(t, status(), 502, "Internal error.")
		ms.set(0, "garbage")
		wantUploaderError(t, status(), 502, "")

		// getLink before the end: the microservice's answer; with the
		// request's own nonce (greater than the upload's), accepted.
		ms.set(400, "")
		if r := status(); r.body["status"] != 400.0 {
			t.Fatalf("getStatus at the end: got %d %s, want 400", r.code, r.raw)
		}
		for i := range 2 {
			nonce, sig := u.next(id)
			code, raw := doAny(t, "GET", n.URL+"/getLink?"+url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil)
			if code != 200 || !strings.Contains(string(raw), "transactionHash") {
				t.Fatalf("getLink %d: got %d %s, want the links", i, code, raw)
			}
			ms.mu.Lock()
			got := ms.links[len(ms.links)-1]
			ms.mu.Unlock()
			if got.Get("quoteId") != id || got.Get("nonce") != nonce || got.Get("signature") != sig {
				t.Fatalf("getLink %d forwarded %v, want quoteId %s, nonce %s and the request's signature", i, got, id, nonce)
			}
		}
		// A microservice's refusal of getLink comes back as its 4xx.
		ms.mu.Lock()
		ms.lastNonce[""] = float64(time.Now().Unix() + 60)
		ms.mu.Unlock()
		nonce, sig = u.next(id)
		code, raw := doAny(t, "GET", n.URL+"/getLink?"+url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil)
		if code != 403 || !strings.Contains(string(raw), "Invalid nonce.") {
			t.Fatalf("getLink refused by the microservice: got %d %s, want 403 Invalid nonce.", code, raw)
		}
	})
}

// TestGetQuoteValidation: duration is required (and positive on the
// built-in type, which it prices), chainId is a string or a whole number.
func TestGetQuoteValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n, ms := proxyNode(t, s)
		u := newEthUser()
		body := func(typ, duration, chain string) string {
			b := fmt.Sprintf(`{"type":%q,"files":[{"length":5}],"payment":{"chainId":%s,"tokenAddress":"0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"},"userAddress":%q`, typ, chain, u.addr)
			if duration != "" {
				b += `,"duration":` + duration
			}
			return b + "}"
		}
		for _, c := range []struct {
			name, body string
			code       int
			msg        string
		}{
			{"built-in, no duration", body("sluice", "", "1"), 400, "Invalid input data: duration is required."},
			{"built-in, null duration", body("sluice", "null", "1"), 400, "Invalid input data: duration is required."},
			{"built-in, zero duration", body("sluice", "0", "1"), 400, "Invalid input data: duration must be at least 1 second."},
			{"built-in, negative duration", body("sluice", "-5", "1"), 400, "Invalid input data: duration must be a whole number of seconds."},
			{"built-in, fractional duration", body("sluice", "1.5", "1"), 400, "Invalid input data: duration must be a whole number of seconds."},
			{"proxied, no duration", body("arweave", "", `"80001"`), 400, "Invalid input data: duration is required."},
			{"unknown type, no duration", body("nope", "", "1"), 400, "Chosen storage type does not exist."},
			{"null chainId", body("sluice", "60", "null"), 400, "Invalid input data: payment.chainId is missing."},
			{"object chainId", body("sluice", "60", `{"id":1}`), 400, "Invalid input data: payment.chainId must be a string or a whole number."},
			{"array chainId", body("sluice", "60", `[1]`), 400, "Invalid input data: payment.chainId must be a string or a whole number."},
			{"float chainId", body("sluice", "60", `1.5`), 400, "Invalid input data: payment.chainId must be a string or a whole number."},
			{"exponent chainId", body("sluice", "60", `1e3`), 400, "Invalid input data: payment.chainId must be a string or a whole number."},
			{"empty chainId", body("sluice", "60", `""`), 400, "Invalid input data: payment.chainId must be a string or a whole number."},
			{"boolean chainId", body("arweave", "60", `true`), 400, "Invalid input data: payment.chainId must be a string or a whole number."},
			{"built-in, number chainId", body("sluice", "60", "1"), 201, ""},
			{"built-in, string chainId", body("sluice", "60", `"1"`), 201, ""},
			{"proxied, duration 0", body("arweave", "0", "80001"), 201, ""},
		} {
			r := do(t, "POST", n.URL+"/getQuote", c.body)
			if c.code == 201 {
				if r.code != 201 || r.str("quoteId") == "" {
					t.Fatalf("%s: got %d %s, want 201", c.name, r.code, r.raw)
				}
				continue
			}
			if r.code != c.code || r.str("error") != c.msg {
				t.Fatalf("%s: got %d %s, want %d %q", c.name, r.code, r.raw, c.code, c.msg)
			}
		}
		ms.mu.Lock()
		defer ms.mu.Unlock()
		if ms.quotes != 1 {
			t.Fatalf("the microservice was asked %d quotes, want 1 (invalid bodies are not forwarded)", ms.quotes)
		}
	})
}

// TestHistoryStorageParameter: the real client's storage=undefined (and
// an empty storage) mean all types; a microservice's type is forwarded to
// it with the request's own parameters and its answer relayed; an unknown
// type is a 404.
func TestHistoryStorageParameter(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n, ms := proxyNode(t, s)
		u := newEthUser()
		if q := do(t, "POST", n.URL+"/getQuote", proxiedQuoteBody(u.addr)); q.code != 201 {
			t.Fatalf("getQuote: %d %s", q.code, q.raw)
		}
		if q := do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 5}},
			"duration": 60, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr}); q.code != 201 {
			t.Fatalf("getQuote: %d %s", q.code, q.raw)
		}
		history := func(extra string) reply {
			nonce, sig := u.next("")
			// Built as the client builds it: by string interpolation.
			return do(t, "GET", n.URL+"/getHistory?userAddress="+u.addr+"&nonce="+nonce+"&signature="+sig+"&page=1&pageSize=25"+extra, nil)
		}
		for _, extra := range []string{"&storage=undefined", "&storage=", ""} {
			h := history(extra)
			if rows, _ := h.body["data"].([]any); h.code != 200 || h.str("type") != "all" || len(rows) != 2 {
				t.Fatalf("history with %q: got %d %s, want type all and both quotes", extra, h.code, h.raw)
			}
		}
		if h := history("&storage=sluice"); h.str("type") != "sluice" || len(h.body["data"].([]any)) != 1 {
			t.Fatalf("history of the built-in type: got %d %s, want its one quote", h.code, h.raw)
		}

		nonce, sig := u.next("")
		h := do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig},
			"page": {"2"}, "pageSize": {"10"}, "storage": {"arweave"}}.Encode(), nil)
		if h.code != 200 || h.str("type") != "arweave" || h.body["maxPages"] != 7.0 || !strings.Contains(string(h.raw), "from-the-microservice") {
			t.Fatalf("history of a microservice's type: got %d %s, want its own answer", h.code, h.raw)
		}
		ms.mu.Lock()
		got := ms.histories[len(ms.histories)-1]
		ms.mu.Unlock()
		want := url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig}, "page": {"2"}, "pageSize": {"10"}}
		if got.Encode() != want.Encode() {
			t.Fatalf("forwarded history query: got %v, want %v", got, want)
		}
		// The microservice's refusal comes back as its 4xx.
		ms.mu.Lock()
		ms.lastNonce[""] = float64(time.Now().Unix() + 60)
		ms.mu.Unlock()
		wantUploaderError(t, history("&storage=arweave"), 403, "Invalid nonce.")
		wantUploaderError(t, history("&storage=nope"), 404, "No matching storage type found")
	})
}

// TestGzipQuoteBodies: a getQuote body sent gzipped is read as the Ocean
// backend's JSON parser reads it, inflated; a broken one is a 400 and one
// that inflates past the limit a 413.
func TestGzipQuoteBodies(t *testing.T) {
	n, _ := proxyNode(t, nodetest.Stores(t)[0])
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	plain, _ := json.Marshal(proxiedQuoteBody("0x3b9ff1e4b40b3cc9ddc0fe7d2e9e4bcd1ad6aa4c"))
	bomb := gz(bytes.Repeat([]byte(" "), 10<<20))
	broken := gz(plain)
	broken[len(broken)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		body []byte
		code int
	}{
		{"gzip", gz(plain), 201},
		{"plain JSON labelled gzip", plain, 201},
		{"broken gzip", broken, 400},
		{"gzip bomb", bomb, 413},
	} {
		r := do(t, "POST", n.URL+"/getQuote", tc.body, "Content-Type", "application/json", "Content-Encoding", "gzip")
		if r.code != tc.code {
			t.Errorf("%s: got %d %.100s, want %d", tc.name, r.code, r.raw, tc.code)
		}
	}
}
