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

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/microservice"
	"github.com/sluicehq/sluice/persistence"
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

// TestNonceRecordAfterAGivenUpCommit: an upload whose commit outlives its
// caller's deadline may still land after the owner's next signed request
// was acknowledged; that request's nonce stays spent (the records never
// share a version, so the store cannot ignore the acknowledged one).
func TestNonceRecordAfterAGivenUpCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		// One flusher: the upload's commit lands first, then the next.
		w := persistence.NewWriter(store, persistence.WriterOptions{Flushers: 1})
		e, err := Start(ctx, Config{Terms: sluice.Terms{Interval: time.Minute}, ChunkSizes: []int64{32 << 10}},
			store, w, metrics.New(), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		n := &node{Engine: e, writer: w}
		defer n.stop()
		key, _ := crypto.GenerateKey()
		owner := crypto.PubkeyToAddress(key.PublicKey).Hex()
		res, err := n.NewQuote(ctx, QuoteRequest{Type: "sluice", Lengths: []int64{5}, Duration: 60, HasDuration: true,
			ChainID: json.RawMessage("1"), Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		id := res.QuoteID
		sign := func(nonce string) string {
			sig, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(id, nonce))), key)
			sig[64] += 27
			return "0x" + hex.EncodeToString(sig)
		}
		first := strconv.FormatInt(time.Now().Unix(), 10)
		up := StartUpload{Files: []sluice.StoredFile{{Name: "a.txt", Pending: "0123456789abcdef0123456789abcdef", Length: 5}},
			Nonce: first, Signature: sign(first)}

		store.mu.Lock()
		store.stall = make(chan struct{})
		store.mu.Unlock()
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := n.StartUpload(short, id, up); !errors.Is(err, sluice.ErrUnavailable) {
			t.Fatalf("StartUpload whose commit stalls: got %v, want unavailable", err)
		}
		// The upload's commit is still being written; the next signed
		// request queues behind it and is acknowledged once it lands.
		second := strconv.FormatInt(time.Now().Unix()+1, 10)
		done := make(chan error, 1)
		go func() { done <- n.CheckSigned(ctx, owner, id, second, sign(second)) }()
		synctest.Wait()
		close(store.stall)
		if err := <-done; err != nil {
			t.Fatalf("signed request after the given-up upload: %v", err)
		}
		if err := n.CheckSigned(ctx, owner, id, second, sign(second)); !errors.Is(err, sluice.ErrNonceReused) {
			t.Fatalf("the acknowledged signed request again: got %v, want %v", err, sluice.ErrNonceReused)
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

// builtinAt is a built-in quote whose one sealed file was cut into one
// piece that stays stored until end, at status.
func builtinAt(id string, status int, end time.Time) quoteState {
	return quoteState{Quote: sluice.Quote{ID: id, Type: "sluice", Lengths: []int64{5}, Amount: "0", Status: status,
		Files:  []sluice.StoredFile{{Name: "a.txt", CID: "bafkreib" + id, Length: 5}},
		Chunks: []sluice.Chunk{{FileHash: sluice.HashBytes([]byte(id)), Size: 5, Quote: id, End: end}}}}
}

// TestBuiltinQuoteFailsWhenItsStorageEndsUnplaced: pieces are not handed
// to farmers past their storage end, and a contract made just before it
// has one challenge interval for its first proof; a built-in quote still
// being placed after that has failed (401) rather than staying at 300 for
// ever. One whose time passed while the node was down fails at start-up;
// one whose last piece is first proven after the end but within the
// interval is done (400).
func TestBuiltinQuoteFailsWhenItsStorageEndsUnplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		const interval = time.Minute // startWith's
		end := time.Now().Add(time.Hour)
		running := builtinAt("running", sluice.StatusUploading, end)
		late := builtinAt("late", sluice.StatusUploading, end)
		stale := builtinAt("stale", sluice.StatusUploading, time.Now().Add(-interval))
		if err := store.Write(ctx, []sluice.Record{quoteRecord(&running), quoteRecord(&late), quoteRecord(&stale)}); err != nil {
			t.Fatal(err)
		}
		n := startWith(t, store, Config{Uploads: UploadConfig{Redundancy: 1}})
		defer n.stop()
		synctest.Wait()
		if q := storedQuote(t, store, "stale"); q.Status != sluice.StatusInternalError {
			t.Fatalf("quote whose time ran out while the node was down: status %d, want 401", q.Status)
		}

		// A farmer takes the late quote's piece a second before the end
		// and proves it five seconds after.
		sleepUntil(end.Add(-time.Second))
		var piece sluice.Chunk
		for _, ch := range n.Engine.pool.take("farmer1", 1<<20, 0, time.Now()) {
			if ch.Quote == "late" {
				piece = ch
			}
		}
		if piece.Quote == "" {
			t.Fatal("the late quote's piece was not handed out before the end")
		}
		sleepUntil(end.Add(5 * time.Second))
		for _, id := range n.Engine.pool.prove("farmer1", piece.FileHash) {
			n.Engine.dir.Tell(quoteIdentity(id), &chunksHeld{})
		}
		synctest.Wait()
		if q := storedQuote(t, store, "late"); q.Status != sluice.StatusDone {
			t.Fatalf("piece proven within an interval of the end: status %d, want 400", q.Status)
		}

		sleepUntil(end.Add(interval - time.Nanosecond))
		if q := storedQuote(t, store, "running"); q.Status != sluice.StatusUploading {
			t.Fatalf("a nanosecond before an interval past its storage end: status %d, want 300", q.Status)
		}
		sleepUntil(end.Add(interval))
		if q := storedQuote(t, store, "running"); q.Status != sluice.StatusInternalError {
			t.Fatalf("an interval past its storage end with no piece placed: status %d, want 401", q.Status)
		}
		if st, err := n.QuoteStatus(ctx, "running"); err != nil || st != sluice.StatusInternalError {
			t.Fatalf("getStatus: %d, %v; want 401", st, err)
		}
		if q := storedQuote(t, store, "late"); q.Status != sluice.StatusDone {
			t.Fatalf("the late quote after its timer: status %d, want 400 kept", q.Status)
		}
	})
}
