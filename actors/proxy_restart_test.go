package actors

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/microservice"
)

// fakeService is a storage microservice speaking the Ocean protocol's
// upload and getStatus: it records the uploads it is handed and reports
// one status for every quote.
type fakeService struct {
	mu      sync.Mutex
	status  int
	uploads []string // quote ids, in order
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/upload/":
		f.uploads = append(f.uploads, r.URL.Query().Get("quoteId"))
	case "/getStatus":
		fmt.Fprintf(w, `{"status":%d}`, f.status)
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"Not found."}`))
	}
}

func (f *fakeService) uploaded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.uploads)
}

// registerFake registers the type "arweave" at url on a registry kept in
// store.
func registerFake(t *testing.T, store *memStore, url string) *microservice.Registry {
	t.Helper()
	key, _ := crypto.GenerateKey()
	sig, _ := crypto.Sign(accounts.TextHash([]byte(url)), key)
	sig[64] += 27
	reg, err := microservice.NewRegistry(context.Background(), store, microservice.RegistryConfig{
		Allowed: []common.Address{crypto.PubkeyToAddress(key.PublicKey)}, Reserved: []string{"sluice"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"type": "arweave", "description": "Arweave", "url": url,
		"signature": "0x" + hex.EncodeToString(sig), "payment": []any{}})
	if code, msg := reg.Register(context.Background(), body); code != 201 {
		t.Fatalf("register: got %d %v, want 201", code, msg)
	}
	return reg
}

// proxiedAt is a proxied quote whose sealed file was uploaded, at status.
func proxiedAt(id string, status int, handedOff bool) quoteState {
	return quoteState{Quote: sluice.Quote{ID: id, Type: "arweave", BackendID: id, Lengths: []int64{5},
		ChainID: json.RawMessage(`"80001"`), Token: "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889", Amount: "123",
		Owner: "0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d", Created: time.Now(), Expires: time.Now().Add(30 * time.Minute),
		Status: status, Nonce: "1700000000", Signature: "0xsig", Version: 1,
		Files: []sluice.StoredFile{{Name: "a.txt", CID: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", Length: 5}}},
		HandedOff: handedOff}
}

func storedQuote(t *testing.T, store *memStore, id string) quoteState {
	t.Helper()
	rec, err := store.Get(context.Background(), sluice.KindQuote, id)
	if err != nil {
		t.Fatal(err)
	}
	q, err := decodeQuote(rec)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestProxiedQuoteResumesWithoutPayingOrUploading: after a restart, a
// proxied quote whose files its microservice already has keeps whatever
// status the microservice last reported (100 and 101 included, the
// node's own payment codes) and is neither paid for by the node nor
// uploaded again; getStatus goes on asking the microservice. A quote
// stopped before its hand-off is handed off once.
func TestProxiedQuoteResumesWithoutPayingOrUploading(t *testing.T) {
	fake := &fakeService{status: 300}
	srv := httptest.NewServer(fake) // outside the bubble: its goroutines are the network's
	defer srv.Close()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		reg := registerFake(t, store, srv.URL+"/")
		defer reg.Close()
		var recs []sluice.Record
		for _, q := range []quoteState{
			proxiedAt("relayed100", sluice.StatusPaymentStart, true),
			proxiedAt("relayed101", sluice.StatusPaymentPulled, true),
			proxiedAt("relayed1", sluice.StatusWaiting, true),
			proxiedAt("before", sluice.StatusPaymentPulled, false),
		} {
			recs = append(recs, quoteRecord(&q))
		}
		// A record from before handed_off existed, at a relayed 100.
		legacy := proxiedAt("legacy100", sluice.StatusPaymentStart, false)
		state, _ := json.Marshal(legacy.Quote)
		recs = append(recs, sluice.Record{Kind: sluice.KindQuote, ID: legacy.ID, Owner: legacy.Owner, Version: 1, Live: true, State: state})
		if err := store.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}

		n := startWith(t, store, Config{Uploads: UploadConfig{Registry: reg, Client: &microservice.Client{
			HTTP: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, Timeout: 5 * time.Second}}})
		defer n.stop()
		synctest.Wait()
		// Past the quotes' expiry too: a relayed 1 is not a quote waiting
		// for its files.
		time.Sleep(time.Hour)
		synctest.Wait()

		if got := fake.uploaded(); !slices.Equal(got, []string{"before"}) {
			t.Fatalf("uploads the microservice got after the restart: got %v, want [before]", got)
		}
		for id, want := range map[string]int{"relayed100": 100, "relayed101": 101, "relayed1": 1, "legacy100": 100, "before": 300} {
			q := storedQuote(t, store, id)
			if q.Status != want || !q.HandedOff {
				t.Fatalf("%s after the restart: got status %d, handed off %v; want %d, handed off", id, q.Status, q.HandedOff, want)
			}
		}
		for _, id := range []string{"relayed100", "relayed101", "legacy100"} {
			st, err := n.QuoteStatus(ctx, id)
			if err != nil || st != 300 {
				t.Fatalf("getStatus of %s: got %d, %v; want 300 from the microservice", id, st, err)
			}
			if q := storedQuote(t, store, id); q.Status != 300 {
				t.Fatalf("%s after getStatus: got stored status %d, want 300", id, q.Status)
			}
		}
	})
}

// TestPayRefusesQuotesTheNodeDoesNotCharge: pay pulls nothing for a
// proxied quote (its microservice takes its own payment) or a free one,
// even with no chain configured (where a payment would fail with 401).
func TestPayRefusesQuotesTheNodeDoesNotCharge(t *testing.T) {
	e := &Engine{}
	ctx := context.Background()
	proxied := proxiedAt("p", sluice.StatusPaymentStart, true).Quote
	if r := e.pay(ctx, proxied).(*paymentResult); r.status != sluice.StatusPaymentStart || r.err == nil || r.txHash != "" {
		t.Fatalf("pay for a proxied quote: got %+v, want its status kept and a refusal", r)
	}
	free := sluice.Quote{ID: "f", Type: "sluice", Amount: "0", Status: sluice.StatusPaymentStart}
	if r := e.pay(ctx, free).(*paymentResult); r.status != sluice.StatusPaymentPulled || r.err != nil || r.txHash != "" {
		t.Fatalf("pay for a free quote: got %+v, want 101 with nothing pulled", r)
	}
	paid := sluice.Quote{ID: "b", Type: "sluice", Amount: "5", Status: sluice.StatusPaymentStart}
	if r := e.pay(ctx, paid).(*paymentResult); r.status != sluice.StatusInternalError {
		t.Fatalf("pay for a paid quote without a chain: got %+v, want 401", r)
	}
}
