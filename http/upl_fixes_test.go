package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// TestNodePrivateListenerErrorsAreJSON: the private listener of a test
// node is the one `sluice serve` runs (Server.Private): its errors are
// {"error": ...} JSON, an oversized registration included.
func TestNodePrivateListenerErrorsAreJSON(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	wantUploaderShape(t, "oversized /register", send(t, "POST", n.Private+"/register", `{"type": "`+strings.Repeat("x", 1<<20)+`"}`),
		413, "Request body too large.")
	wantUploaderShape(t, "GET /register", send(t, "GET", n.Private+"/register", ""), 405, "Method not allowed on this route.")
	wantUploaderShape(t, "GET /nope", send(t, "GET", n.Private+"/nope", ""), 404, "No such route.")
}

// TestGetQuoteBodyThatStopsIs400: a getQuote body that stops arriving (cut
// by the request's read deadline) is the client's failed body, a 400, not
// a body too large.
func TestGetQuoteBodyThatStopsIs400(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{HTTP: sluicehttp.Config{RequestTimeout: 300 * time.Millisecond}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /getQuote HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"type\":")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the reply: %v", err)
	}
	defer res.Body.Close()
	var body map[string]string
	json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != 400 || body["error"] != "Invalid input data: the body could not be read." {
		t.Fatalf("getQuote with a body that stopped: got %d %v, want 400 {error: Invalid input data: the body could not be read.}", res.StatusCode, body)
	}
}

// builtinQuote asks n for a quote of the built-in type for files of the
// given lengths and returns its id.
func builtinQuote(t *testing.T, n *nodetest.Node, u *ethUser, lengths ...int) string {
	t.Helper()
	files := []any{}
	for _, l := range lengths {
		files = append(files, map[string]int{"length": l})
	}
	q := do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": files, "duration": 60,
		"payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
	if q.code != 201 {
		t.Fatalf("getQuote: got %d %s, want 201", q.code, q.raw)
	}
	return q.str("quoteId")
}

func statusOf(t *testing.T, n *nodetest.Node, id string) float64 {
	t.Helper()
	r := do(t, "GET", n.URL+"/getStatus?quoteId="+id, nil)
	st, _ := r.body["status"].(float64)
	return st
}

// TestRefusedUploadKeepsItsNonce: an upload refused for its files (an
// empty file, more files than quoted) stores nothing and spends nothing:
// the same signed request, sent again with the right files, is taken. Once
// taken it cannot be replayed, and its nonce is spent.
func TestRefusedUploadKeepsItsNonce(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n := nodetest.Start(t, s.Open(t), nodetest.Options{})
		u := newEthUser()
		wantUploaderError(t, do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 0}},
			"duration": 60, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr}), 400,
			"Invalid input data: files[0].length must be a whole number of bytes from 1 to 1 TiB.")

		id := builtinQuote(t, n, u, 5)
		nonce, sig := u.next(id)
		wantUploaderError(t, uploadTo(t, n.URL, id, nonce, sig, []byte{}), 400,
			"Empty file file1: every file must hold at least 1 byte; nothing was stored.")
		wantUploaderError(t, uploadTo(t, n.URL, id, nonce, sig, []byte("hel"), []byte("lo")), 400, "More files than quoted (1).")
		if st := statusOf(t, n, id); st != 1 {
			t.Fatalf("status after the refused uploads: got %v, want 1", st)
		}
		if q, err := n.Engine.Quote(context.Background(), id); err != nil || len(q.Files) != 0 {
			t.Fatalf("quote after the refused uploads: got files %v, %v; want none", q.Files, err)
		}
		if r := uploadTo(t, n.URL, id, nonce, sig, []byte("hello")); r.code != 200 {
			t.Fatalf("the same signed upload with the right file: got %d %s, want 200", r.code, r.raw)
		}
		wantUploaderError(t, uploadTo(t, n.URL, id, nonce, sig, []byte("hello")), 400, sluice.ErrNonceReused.Message)
		if err := n.Engine.VerifySigned(context.Background(), u.addr, id, nonce, sig); !errors.Is(err, sluice.ErrNonceReused) {
			t.Fatalf("the taken upload's nonce: got %v, want it spent (%v)", err, sluice.ErrNonceReused)
		}
	})
}

// TestEmptyFilesQuoteCompletes: a built-in quote recorded (before empty
// files were refused) with files of no bytes, paid, completes: there is
// nothing to place on farmers.
func TestEmptyFilesQuoteCompletes(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		store := s.Open(t)
		now := time.Now()
		q := sluice.Quote{ID: "00000000000000000000000000e3b0c4", Type: "sluice", Lengths: []int64{1}, Duration: 60,
			ChainID: json.RawMessage("1"), Token: common.Address{}.Hex(), Amount: "0", Payee: common.Address{}.Hex(),
			Owner: "0xA3C960B3BA29367ecBCAf1430452C6cd7516F588", Created: now, Expires: now.Add(time.Hour),
			Status: sluice.StatusPaymentPulled, Nonce: "1700000000", Signature: "0xsig", Version: 3,
			Files: []sluice.StoredFile{{Name: "empty.txt", CID: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", Length: 0}}}
		state, _ := json.Marshal(q)
		if err := store.Write(context.Background(), []sluice.Record{{Kind: sluice.KindQuote, ID: q.ID,
			Owner: strings.ToLower(q.Owner), Version: q.Version, Live: true, State: state}}); err != nil {
			t.Fatal(err)
		}
		n := nodetest.Start(t, store, nodetest.Options{})
		for deadline := time.Now().Add(10 * time.Second); statusOf(t, n, q.ID) != 400; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("status of a paid quote of empty files: got %v, want 400", statusOf(t, n, q.ID))
			}
		}
	})
}

// TestGetQuoteStrictBody: getQuote takes one JSON object and nothing
// after it, and addresses written with 0x and 40 hex digits.
func TestGetQuoteStrictBody(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n, ms := proxyNode(t, s)
		u := newEthUser()
		valid := func(typ, user string) string {
			b, _ := json.Marshal(map[string]any{"type": typ, "files": []any{map[string]int{"length": 5}}, "duration": 60,
				"payment": map[string]any{"chainId": "80001", "tokenAddress": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}, "userAddress": user})
			return string(b)
		}
		for _, c := range []struct {
			name, body string
			code       int
			msg        string
		}{
			{"trailing garbage", valid("sluice", u.addr) + "xx", 400, "Invalid input data: unexpected data after the JSON object."},
			{"second object", valid("sluice", u.addr) + "{}", 400, "Invalid input data: unexpected data after the JSON object."},
			{"proxied, trailing garbage", valid("arweave", u.addr) + "xx", 400, "Invalid input data: unexpected data after the JSON object."},
			{"no 0x", valid("sluice", strings.TrimPrefix(u.addr, "0x")), 400, "Invalid input data: userAddress is not an Ethereum address (0x and 40 hex digits)."},
			{"0X", valid("sluice", "0X"+strings.TrimPrefix(u.addr, "0x")), 400, "Invalid input data: userAddress is not an Ethereum address (0x and 40 hex digits)."},
			{"short", valid("sluice", u.addr[:41]), 400, "Invalid input data: userAddress is not an Ethereum address (0x and 40 hex digits)."},
			{"token without 0x", strings.Replace(valid("sluice", u.addr), `"0x9c3C`, `"9c3C`, 1), 400, "Invalid input data: payment.tokenAddress is not an address (0x and 40 hex digits)."},
			{"trailing white space", valid("sluice", u.addr) + " \n", 201, ""},
			{"lower-case address", valid("sluice", strings.ToLower(u.addr)), 201, ""},
		} {
			r := do(t, "POST", n.URL+"/getQuote", c.body)
			if c.code == 201 {
				if r.code != 201 || r.str("quoteId") == "" {
					t.Fatalf("%s: got %d %s, want 201", c.name, r.code, r.raw)
				}
				continue
			}
			wantUploaderError(t, r, c.code, c.msg)
		}
		ms.mu.Lock()
		defer ms.mu.Unlock()
		if ms.quotes != 0 {
			t.Fatalf("the microservice was asked %d quotes, want 0", ms.quotes)
		}
	})
}

// idService is a microservice that answers getQuote with the quote id it
// is set to.
type idService struct {
	mu    sync.Mutex
	id    string
	links int
}

func (s *idService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case "/getQuote":
		fmt.Fprintf(w, `{"quoteId":%q,"chainId":80001,"tokenAddress":"0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889","tokenAmount":"7","approveAddress":"0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d"}`, s.id)
	case "/getLink":
		s.links++
		fmt.Fprint(w, `[{"type":"x","cid":"bafy"}]`)
	default:
		w.WriteHeader(404)
		fmt.Fprint(w, `{"message":"Not found."}`)
	}
}

func (s *idService) set(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id = id
}

// quoteBodyOf is a getQuote body for one 5-byte file of type typ.
func quoteBodyOf(user, typ string) map[string]any {
	b := proxiedQuoteBody(user)
	b["type"] = typ
	return b
}

// servicesNode starts a node with an idService registered for each type.
func servicesNode(t *testing.T, s nodetest.Store, types ...string) (*nodetest.Node, map[string]*idService) {
	t.Helper()
	registrar, _ := crypto.GenerateKey()
	n := nodetest.Start(t, s.Open(t), nodetest.Options{RegisterSigners: []common.Address{crypto.PubkeyToAddress(registrar.PublicKey)}})
	out := map[string]*idService{}
	for _, typ := range types {
		ms := &idService{}
		srv := httptest.NewServer(ms)
		t.Cleanup(srv.Close)
		code, raw := doAny(t, "POST", n.Private+"/register", map[string]any{"type": typ, "description": typ,
			"url": srv.URL + "/", "signature": signHex(t, registrar, srv.URL+"/"),
			"payment": []any{map[string]any{"chainId": 80001, "acceptedTokens": []any{map[string]string{"WMATIC": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}}}}})
		if code != 201 {
			t.Fatalf("register %s: got %d %s, want 201", typ, code, raw)
		}
		out[typ] = ms
	}
	return n, out
}

// TestBackendQuoteIDInUse: a microservice's quote id is the node's when it
// is free; one that a quote already has (the same microservice's, another
// one's, a built-in quote's) is refused with 502, and the quote that has
// it is left alone.
func TestBackendQuoteIDInUse(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n, ms := servicesNode(t, s, "arweave", "filecoin")
		u := newEthUser()
		ask := func(typ string) reply { return do(t, "POST", n.URL+"/getQuote", quoteBodyOf(u.addr, typ)) }
		const first = "00000000000000000000000000000001"
		ms["arweave"].set(first)
		if r := ask("arweave"); r.code != 201 || r.str("quoteId") != first {
			t.Fatalf("first quote: got %d %s, want 201 with quoteId %s", r.code, r.raw, first)
		}
		builtin := builtinQuote(t, n, u, 5)
		for _, c := range []struct{ typ, id string }{{"arweave", first}, {"filecoin", first}, {"filecoin", builtin}} {
			ms[c.typ].set(c.id)
			wantUploaderError(t, ask(c.typ), 502, "storage backend returned a quote id already in use")
		}
		for id, typ := range map[string]string{first: "arweave", builtin: "sluice"} {
			if q, err := n.Engine.Quote(context.Background(), id); err != nil || q.Type != typ || q.Status != 1 {
				t.Fatalf("quote %s after the clashes: got type %q status %d, %v; want %s at 1", id, q.Type, q.Status, err, typ)
			}
		}
		ms["filecoin"].set("00000000000000000000000000000002")
		if r := ask("filecoin"); r.code != 201 || r.str("quoteId") != "00000000000000000000000000000002" {
			t.Fatalf("a free id: got %d %s, want 201", r.code, r.raw)
		}
	})
}

// TestGetLinkBeforeTheFilesAreHandedOff: getLink on a quote with no link
// yet (a proxied quote not handed to its microservice, a built-in one not
// done) is 400 "Upload not completed yet.", asks no microservice and
// spends no nonce.
func TestGetLinkBeforeTheFilesAreHandedOff(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n, ms := servicesNode(t, s, "arweave")
		u := newEthUser()
		ms["arweave"].set("0000000000000000000000000000000a")
		q := do(t, "POST", n.URL+"/getQuote", quoteBodyOf(u.addr, "arweave"))
		if q.code != 201 {
			t.Fatalf("getQuote: got %d %s, want 201", q.code, q.raw)
		}
		for _, id := range []string{q.str("quoteId"), builtinQuote(t, n, u, 5)} {
			nonce, sig := u.next(id)
			link := n.URL + "/getLink?" + url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {sig}}.Encode()
			wantUploaderError(t, do(t, "GET", link, nil), 400, "Upload not completed yet.")
			if err := n.Engine.VerifySigned(context.Background(), u.addr, id, nonce, sig); err != nil {
				t.Fatalf("quote %s: the early getLink spent its nonce: %v", id, err)
			}
		}
		ms["arweave"].mu.Lock()
		defer ms["arweave"].mu.Unlock()
		if ms["arweave"].links != 0 {
			t.Fatalf("the microservice was asked %d links, want 0", ms["arweave"].links)
		}
	})
}
