package actors

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/blobstore"
)

// uploadFree makes a free built-in quote stored for d and uploads content
// as its one file, the way the HTTP layer does (Stage, then StartUpload).
func uploadFree(t *testing.T, n *node, bs *blobstore.Store, content string, d time.Duration) string {
	t.Helper()
	ctx := context.Background()
	key, _ := crypto.GenerateKey()
	owner := crypto.PubkeyToAddress(key.PublicKey).Hex()
	res, err := n.NewQuote(ctx, QuoteRequest{Type: "sluice", Lengths: []int64{int64(len(content))},
		Duration: int64(d / time.Second), HasDuration: true, ChainID: json.RawMessage("1"), Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	pending, _, err := bs.Stage(ctx, bytes.NewReader([]byte(content)), -1)
	if err != nil {
		t.Fatal(err)
	}
	nonce := strconv.FormatInt(time.Now().Unix(), 10)
	sig, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(res.QuoteID, nonce))), key)
	sig[64] += 27
	if err := n.StartUpload(ctx, res.QuoteID, StartUpload{Files: []sluice.StoredFile{{Name: "f", Pending: pending,
		Length: int64(len(content))}}, Nonce: nonce, Signature: "0x" + hex.EncodeToString(sig)}); err != nil {
		t.Fatal(err)
	}
	return res.QuoteID
}

// TestSharedPieceKeepsTheFileItIsServedFrom: two different files that
// share a piece (docs/uploader.md: "a block two files share") are one
// piece in the pool, served from the file of the quote that added it
// first. Once that quote no longer needs its file (here it failed, 401;
// a done quote whose storage ends first does the same), the file is
// removed, yet the piece is still handed to farmers for the other quote,
// which is still being placed: a farmer taking it cannot download it.
func TestSharedPieceKeepsTheFileItIsServedFrom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		const interval = time.Minute // startWith's
		n := startWith(t, newMemStore(), Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention,
			Redundancy: 1, ChunkSize: 16}})
		defer n.stop()
		t0 := time.Now()
		const block = "0123456789abcdef" // one piece, the first of both files
		first := uploadFree(t, n, bs, block+"first file", time.Hour)
		second := uploadFree(t, n, bs, block+"second file", 5*time.Hour)
		synctest.Wait()
		for _, id := range []string{first, second} {
			if q := storedQuote(t, n.store(), id); q.Status != sluice.StatusUploading || len(q.Chunks) != 2 {
				t.Fatalf("quote %s: status %d, %d pieces; want 300 with 2", id, q.Status, len(q.Chunks))
			}
		}
		// No farmer came in time for the first quote: it fails an interval
		// after its storage end, and its file goes a retention later.
		sleepUntil(t0.Add(time.Hour + interval + retention + time.Second))
		if q := storedQuote(t, n.store(), first); q.Status != sluice.StatusInternalError {
			t.Fatalf("first quote: status %d, want 401", q.Status)
		}
		q2 := storedQuote(t, n.store(), second)
		if q2.Status != sluice.StatusUploading {
			t.Fatalf("second quote: status %d, want 300 (stored until %v)", q2.Status, q2.Chunks[0].End)
		}
		// A farmer comes now for the second quote's pieces and downloads
		// each one from where the node says it is.
		for _, ch := range n.pool.take("farmer", 1<<20, 0, time.Now()) {
			f, _, err := n.cfg.Uploads.Blobs.Open(ch.Source)
			if err != nil {
				t.Errorf("piece %x (quote %s still at 300 until %v) is handed out from file %s, which is gone: %v",
					ch.FileHash[:4], second, q2.Chunks[0].End.Sub(t0), ch.Source, err)
				continue
			}
			got := make([]byte, ch.Size)
			_, err = f.ReadAt(got, ch.Offset)
			f.Close()
			if err != nil && err != io.EOF || sluice.HashBytes(got) != ch.FileHash {
				t.Errorf("piece %x: bytes do not match (%v)", ch.FileHash[:4], err)
			}
		}
	})
}

// TestEndedNeedsAreForgotten: a done built-in quote's need ends at its
// storage end, its file is removed a retention period later, and the need
// itself is forgotten as later quotes come and go, although nothing
// settles its CID again: the map does not grow with every quote ever
// done.
func TestEndedNeedsAreForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		store := newMemStore()
		t0 := time.Now()
		for i := range 3 {
			id := "done" + strconv.Itoa(i)
			q := quoteWithFile(id, "sluice", sluice.StatusDone, putBlob(t, bs, id), t0.Add(time.Hour))
			if err := store.Write(ctx, []sluice.Record{quoteRecord(&q)}); err != nil {
				t.Fatal(err)
			}
		}
		n := startWith(t, store, Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention, Redundancy: 1}})
		defer n.stop()
		sleepUntil(t0.Add(time.Hour + retention + time.Second))
		if left, _ := bs.List(); len(left) != 0 {
			t.Fatalf("files stored after their storage end and retention: %d, want 0", len(left))
		}
		// Ended needs are swept as later quotes come and go.
		for i := range 20 {
			n.needs.need("later"+strconv.Itoa(i), nil, time.Now())
		}
		n.needs.mu.Lock()
		until, open := len(n.needs.until), len(n.needs.open)
		n.needs.mu.Unlock()
		if until != 0 || open != 0 {
			t.Fatalf("blobNeeds after every need ended and every file is gone: %d CIDs in until, %d quotes in open; want 0 and 0", until, open)
		}
	})
}

// TestPieceSharedWithAnEndedQuote: start-up puts the pieces of every done
// built-in quote in the pool, also of those whose storage period ended
// long ago, and releases their files. A new upload with a block such a
// quote had (a run of zeros, a common header) joins that old piece, which
// is still read from the old quote's file: the new quote's piece is
// handed out from a file that is gone, and the quote can never be placed.
func TestPieceSharedWithAnEndedQuote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		const block = "0123456789abcdef"
		t0 := time.Now()
		oldFile := putBlob(t, bs, block+"old file")
		old := quoteState{Quote: sluice.Quote{ID: "old", Type: "sluice", Lengths: []int64{24}, Amount: "0", Status: sluice.StatusDone,
			Files: []sluice.StoredFile{{Name: "old", CID: oldFile, Length: 24}},
			Chunks: []sluice.Chunk{
				{FileHash: sluice.HashBytes([]byte(block)), Size: 16, Quote: "old", Source: oldFile, Offset: 0, End: t0.Add(-time.Hour)},
				{FileHash: sluice.HashBytes([]byte("old file")), Size: 8, Quote: "old", Source: oldFile, Offset: 16, End: t0.Add(-time.Hour)},
			}}}
		store := newMemStore()
		if err := store.Write(ctx, []sluice.Record{quoteRecord(&old)}); err != nil {
			t.Fatal(err)
		}
		n := startWith(t, store, Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention,
			Redundancy: 1, ChunkSize: 16}})
		defer n.stop()
		sleepUntil(t0.Add(retention + time.Second))
		if bs.Has(diskBlobs{}.cid(oldFile)) {
			t.Fatal("the old quote's file is still stored a retention period after start-up")
		}
		id := uploadFree(t, n, bs, block+"new file", time.Hour)
		synctest.Wait()
		if q := storedQuote(t, store, id); q.Status != sluice.StatusUploading {
			t.Fatalf("new quote: status %d, want 300", q.Status)
		}
		for _, ch := range n.pool.take("farmer", 1<<20, 0, time.Now()) {
			if _, _, err := n.cfg.Uploads.Blobs.Open(ch.Source); err != nil {
				t.Errorf("piece %x of the new quote is handed out from %s: %v", ch.FileHash[:4], ch.Source, err)
			}
		}
	})
}
