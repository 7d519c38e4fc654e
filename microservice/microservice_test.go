package microservice

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
)

// memStore is a test double for the node's store.
type memStore struct {
	mu   sync.Mutex
	recs map[string]sluice.Record
}

func (s *memStore) Write(_ context.Context, recs []sluice.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs == nil {
		s.recs = map[string]sluice.Record{}
	}
	for _, r := range recs {
		if old, ok := s.recs[r.ID]; !ok || old.Version < r.Version {
			s.recs[r.ID] = r
		}
	}
	return nil
}

func (s *memStore) Live(_ context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error {
	s.mu.Lock()
	var out []sluice.Record
	for _, r := range s.recs {
		if r.Kind == kind && r.Live {
			out = append(out, r)
		}
	}
	s.mu.Unlock()
	for _, r := range out {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// The reference's register vector (section 1.4).
const (
	vectorURL    = "http://localhost:8081/"
	vectorSig    = "0x9a7a6ab7527e54f3308f6b05cfc29734938a72c0be2c299cf75df680dafb36963f4f3743ffc3c035c7ee3cc4b54969fb76a7796db39ba0f9907e109efdfb50d71c"
	vectorSigner = "0xA3C960B3BA29367ecBCAf1430452C6cd7516F588"
)

func signURL(t *testing.T, url string) (string, common.Address) {
	key, _ := crypto.GenerateKey()
	sig, err := crypto.Sign(accounts.TextHash([]byte(url)), key)
	if err != nil {
		t.Fatal(err)
	}
	sig[64] += 27
	return "0x" + hex.EncodeToString(sig), crypto.PubkeyToAddress(key.PublicKey)
}

// twin returns the malleable twin of a hex R‖S‖V signature (V 27/28):
// s replaced by n−s and V flipped. It recovers the same signer.
func twin(t *testing.T, sig string) string {
	raw, err := hex.DecodeString(strings.TrimPrefix(sig, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	s := new(big.Int).Sub(crypto.S256().Params().N, new(big.Int).SetBytes(raw[32:64]))
	s.FillBytes(raw[32:64])
	raw[64] = 27 + 28 - raw[64]
	return "0x" + hex.EncodeToString(raw)
}

func body(v map[string]any) []byte { b, _ := json.Marshal(v); return b }

func arweave(desc string) map[string]any {
	return map[string]any{"type": "arweave", "description": desc, "url": vectorURL, "signature": vectorSig,
		"payment": []any{map[string]any{"chainId": 80001, "acceptedTokens": []any{map[string]string{"WMATIC": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}}}}}
}

func TestReplyJSON(t *testing.T) {
	for _, c := range []struct {
		r    Reply
		want string
	}{
		{Reply{Message: "Desired storage created."}, `"Desired storage created."`},
		{Reply{Message: "Invalid signature.", Refused: true}, `{"error":"Invalid signature."}`},
	} {
		if got, err := json.Marshal(c.r); err != nil || string(got) != c.want {
			t.Errorf("%+v: got %s, %v, want %s", c.r, got, err, c.want)
		}
	}
}

func TestRegister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		other, otherAddr := signURL(t, vectorURL)
		r, err := NewRegistry(context.Background(), &memStore{}, RegistryConfig{
			Allowed: []common.Address{common.HexToAddress(vectorSigner)}, Reserved: []string{"sluice"}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_ = otherAddr
		ctx := context.Background()
		for _, c := range []struct {
			name string
			body []byte
			code int
			msg  string
		}{
			{"new", body(arweave("File storage on Arweave")), 201, "Desired storage created."},
			{"again, updated", body(arweave("Arweave, updated")), 200, "Chosen storage type is already active and registered."},
			{"uploader.js shape", body(map[string]any{"type": "ipfs", "description": "IPFS", "url": vectorURL, "signature": vectorSig,
				"paymentMethods": []any{map[string]any{"chainId": "1", "acceptedTokens": []any{map[string]string{"title": "ETH", "value": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}}}}}), 201, "Desired storage created."},
			{"no signature", body(map[string]any{"type": "x", "url": vectorURL}), 400, "Invalid input data."},
			{"no type", body(map[string]any{"url": vectorURL, "signature": vectorSig}), 400, "Invalid input data."},
			{"garbage signature", body(map[string]any{"type": "x", "url": vectorURL, "signature": "0x1234"}), 400, "Invalid signature."},
			{"high S", body(map[string]any{"type": "x", "url": vectorURL, "signature": twin(t, vectorSig)}), 400,
				"Invalid signature: a malleable (high-S) signature; sign again with a standard wallet."},
			{"not allowed", body(map[string]any{"type": "x", "url": vectorURL, "signature": other}), 403, "Registration request received from non-approved address."},
			{"reserved", body(map[string]any{"type": "sluice", "url": vectorURL, "signature": vectorSig}), 400, "Chosen storage type is reserved by this node."},
			{"not JSON", []byte("type=x"), 400, "Invalid input data."},
			{"type too long", body(map[string]any{"type": strings.Repeat("t", MaxTypeLen+1), "url": vectorURL, "signature": vectorSig}), 400,
				"Invalid input data: type is longer than 64 bytes."},
			{"token that is no address", body(map[string]any{"type": "x", "url": vectorURL, "signature": vectorSig,
				"payment": []any{map[string]any{"chainId": 1, "acceptedTokens": []any{map[string]string{"X": "zz"}}}}}), 400,
				"Invalid input data: acceptedTokens: \"zz\" is not a token contract address."},
			{"body not UTF-8", []byte("{\"type\":\"x\",\"description\":\"\xff\",\"url\":\"" + vectorURL + "\",\"signature\":\"" + vectorSig + "\"}"), 400,
				"Invalid input data: the body is not valid UTF-8."},
			{"type with NUL", body(map[string]any{"type": "nul\x00type", "url": vectorURL, "signature": vectorSig}), 400,
				"Invalid input data: type must not hold control characters."},
			{"type with a line break", body(map[string]any{"type": "a\nb", "url": vectorURL, "signature": vectorSig}), 400,
				"Invalid input data: type must not hold control characters."},
			{"description too long", body(map[string]any{"type": "x", "description": strings.Repeat("d", MaxDescriptionLen+1), "url": vectorURL, "signature": vectorSig}), 400,
				"Invalid input data: description is longer than 1024 bytes."},
			{"url too long", body(map[string]any{"type": "x", "url": vectorURL + strings.Repeat("u", MaxURLLen), "signature": vectorSig}), 400,
				"Invalid input data: url is longer than 2048 bytes."},
		} {
			code, rep := r.Register(ctx, c.body)
			if code != c.code || rep.Message != c.msg || rep.Refused != (c.code >= 400) {
				t.Fatalf("%s: got %d %+v, want %d %q", c.name, code, rep, c.code, c.msg)
			}
		}
		s, known, active := r.Get("arweave")
		if !known || !active || s.Description != "Arweave, updated" || s.Payment[0].ChainID != "80001" ||
			s.Payment[0].AcceptedTokens[0] != (Token{"WMATIC", "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}) {
			t.Fatalf("arweave after update: %+v %v %v", s, known, active)
		}
		if s, _, _ := r.Get("ipfs"); s.Payment[0].AcceptedTokens[0] != (Token{"ETH", "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}) {
			t.Fatalf("uploader.js shape: %+v", s)
		}
	})
}

func TestRegistrationExpiresAndReactivates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memStore{}
		cfg := RegistryConfig{TTL: 10 * time.Minute, Allowed: []common.Address{common.HexToAddress(vectorSigner)}}
		r, _ := NewRegistry(context.Background(), store, cfg)
		ctx := context.Background()
		r.Register(ctx, body(arweave("a")))
		time.Sleep(6 * time.Minute)
		r.Register(ctx, body(arweave("a"))) // pushes the expiry to +16 min
		time.Sleep(10*time.Minute - time.Nanosecond)
		synctest.Wait()
		if len(r.Active()) != 1 {
			t.Fatal("expired before its renewed TTL")
		}
		// A restart keeps the time left.
		r.Close()
		r, _ = NewRegistry(context.Background(), store, cfg)
		defer r.Close()
		if len(r.Active()) != 1 {
			t.Fatal("a restart dropped a live registration")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := r.Active(); len(got) != 0 {
			t.Fatalf("after the TTL: %v still active", got)
		}
		if code, msg := r.Register(ctx, body(arweave("a"))); code != 201 || msg != (Reply{Message: "Chosen storage type reactivated."}) {
			t.Fatalf("re-register after expiry: %d %+v", code, msg)
		}
	})
}

// standInArweave is a stand-in for oceanprotocol/uploader_arweave (which
// needs Bundlr and a live chain): it speaks that service's HTTP protocol
// (reference section 5.1) and nothing more.
func standInArweave(t *testing.T, hang chan struct{}) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /getQuote", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Type string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Type != "arweave" {
			w.WriteHeader(400)
			w.Write([]byte(`{"message":"Invalid type."}`))
			return
		}
		w.Write([]byte(`{"quoteId":"40acc6937e1bd98631f47e7cbda72920","chainId":80001,"tokenAddress":"0x9c3C","tokenAmount":"123","approveAddress":"0x5F83"}`))
	})
	mux.HandleFunc("POST /upload/", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			QuoteID string
			Nonce   string
			Files   []FileRef
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Query().Get("quoteId") != req.QuoteID || len(req.Files) == 0 {
			w.WriteHeader(400)
			w.Write([]byte(`{"message":"Invalid files field."}`))
		}
	})
	mux.HandleFunc("GET /getStatus", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("quoteId") != "40acc6937e1bd98631f47e7cbda72920" {
			w.WriteHeader(404)
			w.Write([]byte(`{"message":"Quote not found."}`))
			return
		}
		w.Write([]byte(`{"status":300}`))
	})
	mux.HandleFunc("GET /getLink", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[{"type":"arweave","transactionHash":"xg8aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa43"}]`))
	})
	mux.HandleFunc("GET /getHistory", func(w http.ResponseWriter, r *http.Request) {
		if hang != nil {
			<-hang
		}
		w.Write([]byte(`{"type":"arweave","maxPages":0,"data":[]}`))
	})
	return httptest.NewServer(mux)
}

func TestClientAgainstStandIn(t *testing.T) {
	hang := make(chan struct{})
	srv := standInArweave(t, hang)
	defer srv.Close()
	defer close(hang)
	c := &Client{Timeout: 200 * time.Millisecond}
	s := Storage{Type: "arweave", URL: srv.URL + "/"}
	ctx := context.Background()

	q, err := c.GetQuote(ctx, s, []byte(`{"type":"arweave"}`))
	if err != nil || !strings.Contains(string(q), "40acc693") {
		t.Fatalf("getQuote: %s %v", q, err)
	}
	_, err = c.GetQuote(ctx, s, []byte(`{"type":"filecoin"}`))
	if re, ok := IsRemote(err); !ok || re.Status != 400 || re.Message != "Invalid type." {
		t.Fatalf("relayed error: %v", err)
	}
	ct := "text/plain"
	if err := c.Upload(ctx, Storage{URL: srv.URL}, "40acc6937e1bd98631f47e7cbda72920", "1700000000", "0xsig",
		[]FileRef{{IPFSURI: "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", ContentType: &ct}}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if st, err := c.GetStatus(ctx, s, "40acc6937e1bd98631f47e7cbda72920"); err != nil || st != 300 {
		t.Fatalf("getStatus: %d %v", st, err)
	}
	if _, err := c.GetStatus(ctx, s, "nope"); err == nil {
		t.Fatal("getStatus of an unknown quote succeeded")
	} else if re, _ := IsRemote(err); re == nil || re.Status != 404 || re.Message != "Quote not found." {
		t.Fatalf("getStatus unknown: %v", err)
	}
	if l, err := c.GetLink(ctx, s, "q", "1", "s"); err != nil || !strings.Contains(string(l), "transactionHash") {
		t.Fatalf("getLink: %s %v", l, err)
	}
	_, err = c.GetHistory(ctx, s, nil)
	if !errors.Is(err, sluice.ErrUnavailable) {
		t.Fatalf("a hanging microservice: got %v, want unavailable after the timeout", err)
	}
}

func TestJoin(t *testing.T) {
	for _, c := range []struct{ base, ref, want string }{
		{"http://h/api", "getQuote", "http://h/getQuote"},
		{"http://h/api/", "getQuote", "http://h/api/getQuote"},
		{"http://h:8081/", "getStatus?quoteId=1", "http://h:8081/getStatus?quoteId=1"},
	} {
		if got, _ := join(c.base, c.ref); got != c.want {
			t.Fatalf("join(%q, %q): got %q, want %q", c.base, c.ref, got, c.want)
		}
	}
}

// TestGetStatusReplies: a microservice's getStatus reply is a status, or
// an error that says what went wrong; never a status made up by the node.
func TestGetStatusReplies(t *testing.T) {
	for _, c := range []struct {
		name   string
		code   int
		body   string
		status int    // when no error
		remote int    // the RemoteError's status, when an error
		msg    string // its message, when it matters
	}{
		{"status", 200, `{"status":101}`, 101, 0, ""},
		{"quote unknown (arweave)", 404, `{"message":"Quote not found."}`, 0, 404, "Quote not found."},
		{"internal error (filecoin)", 400, `{"error":"lighthouse down","status":401}`, 401, 0, ""},
		{"bad request", 400, `{"message":"Invalid quoteId format."}`, 0, 400, "Invalid quoteId format."},
		{"server error", 500, `{"message":"boom"}`, 0, 500, ""},
		{"garbage", 200, `<html>`, 0, 200, ""},
		{"no status", 200, `{"state":1}`, 0, 200, ""},
		{"status not a number", 200, `{"status":"300"}`, 0, 200, ""},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.code)
			w.Write([]byte(c.body))
		}))
		st, err := (&Client{Timeout: time.Second}).GetStatus(context.Background(), Storage{URL: srv.URL + "/"}, "q")
		srv.Close()
		if c.remote == 0 {
			if err != nil || st != c.status {
				t.Fatalf("%s: got %d, %v; want status %d", c.name, st, err, c.status)
			}
			continue
		}
		re, ok := IsRemote(err)
		if !ok || re.Status != c.remote || (c.msg != "" && re.Message != c.msg) {
			t.Fatalf("%s: got %d, %v; want a remote error %d %q", c.name, st, err, c.remote, c.msg)
		}
	}

	// No answer at all: a bad gateway, still an unavailable backend.
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, err := (&Client{Timeout: time.Second}).GetStatus(context.Background(), Storage{URL: srv.URL + "/"}, "q")
	if re, ok := IsRemote(err); !ok || re.Status != http.StatusBadGateway || !errors.Is(err, sluice.ErrUnavailable) {
		t.Fatalf("unreachable: got %v, want a 502 remote error wrapping unavailable", err)
	}
}
