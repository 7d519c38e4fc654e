package actors

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/microservice"
)

// TestStartUploadSpendsTheNonceWithTheFiles: an upload's nonce is spent in
// the commit that records its files: a commit that fails spends nothing,
// one that lands spends it, and the same request cannot start the upload
// again.
func TestStartUploadSpendsTheNonceWithTheFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		n := startWith(t, store, Config{})
		defer n.stop()
		key, _ := crypto.GenerateKey()
		owner := crypto.PubkeyToAddress(key.PublicKey).Hex()
		quote := func() string {
			res, err := n.NewQuote(ctx, QuoteRequest{Type: "sluice", Lengths: []int64{5}, Duration: 60, HasDuration: true,
				ChainID: json.RawMessage("1"), Owner: owner})
			if err != nil {
				t.Fatal(err)
			}
			return res.QuoteID
		}
		upload := func(id string) StartUpload {
			nonce := strconv.FormatInt(time.Now().Unix(), 10)
			sig, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(id, nonce))), key)
			sig[64] += 27
			return StartUpload{Files: []sluice.StoredFile{{Name: "a.txt", Pending: "0123456789abcdef0123456789abcdef", Length: 5}},
				Nonce: nonce, Signature: "0x" + hex.EncodeToString(sig)}
		}

		// A quote that refuses the files spends nothing.
		expired := quote()
		time.Sleep(time.Hour)
		if err := n.StartUpload(ctx, expired, upload(expired)); !errors.Is(err, sluice.ErrExpired) {
			t.Fatalf("StartUpload on an expired quote: got %v, want expired", err)
		}
		if _, err := store.Get(ctx, sluice.KindNonce, strings.ToLower(owner)); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("nonce record after the refused upload: got %v, want none", err)
		}

		// Nor does a commit that fails.
		id := quote()
		up := upload(id)
		store.mu.Lock()
		store.fail = errors.New("disk on fire")
		store.mu.Unlock()
		if err := n.StartUpload(ctx, id, up); !errors.Is(err, sluice.ErrUnavailable) {
			t.Fatalf("StartUpload on a failing store: got %v, want unavailable", err)
		}
		store.mu.Lock()
		store.fail = nil
		store.mu.Unlock()
		if _, err := store.Get(ctx, sluice.KindNonce, strings.ToLower(owner)); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("nonce record after the failed commit: got %v, want none", err)
		}
		if err := n.StartUpload(ctx, id, up); err != nil {
			t.Fatalf("StartUpload: got %v, want nil", err)
		}
		if _, err := store.Get(ctx, sluice.KindNonce, strings.ToLower(owner)); err != nil {
			t.Fatalf("nonce record after the upload: got %v, want it committed", err)
		}
		if err := n.StartUpload(ctx, id, up); !errors.Is(err, sluice.ErrNonceReused) {
			t.Fatalf("StartUpload again: got %v, want %v", err, sluice.ErrNonceReused)
		}
	})
}

// TestConcurrentQuotesWithOneBackendID: microservice quotes made at once
// with the same quote id: one gets it, the others are refused with
// ErrQuoteIDInUse.
func TestConcurrentQuotesWithOneBackendID(t *testing.T) {
	ms := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"quoteId":"00000000000000000000000000000001","tokenAmount":"1","approveAddress":"0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d"}`))
	}))
	defer ms.Close()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		reg := registerFake(t, store, ms.URL+"/")
		defer reg.Close()
		n := startWith(t, store, Config{Uploads: UploadConfig{Registry: reg, Client: &microservice.Client{
			HTTP: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, Timeout: 5 * time.Second}}})
		defer n.stop()
		const tries = 8
		errs := make([]error, tries)
		var wg sync.WaitGroup
		for i := range tries {
			wg.Go(func() {
				_, errs[i] = n.NewQuote(ctx, QuoteRequest{Type: "arweave", Lengths: []int64{5}, HasDuration: true,
					ChainID: json.RawMessage("1"), Owner: "0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d", Raw: []byte(`{}`)})
			})
		}
		wg.Wait()
		made := 0
		for _, err := range errs {
			switch {
			case err == nil:
				made++
			case err != error(ErrQuoteIDInUse):
				t.Fatalf("NewQuote: got %v, want nil or %v", err, ErrQuoteIDInUse)
			}
		}
		if made != 1 {
			t.Fatalf("quotes made with one backend id: got %d, want 1", made)
		}
	})
}
