package actors

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/blobstore"
)

// diskBlobs is the real blob store behind the engine's string CIDs, as
// internal/blobs adapts it (that package imports this one).
type diskBlobs struct{ s *blobstore.Store }

func (d diskBlobs) cid(s string) blobstore.CID {
	c, err := blobstore.ParseCID(s)
	if err != nil {
		panic(err)
	}
	return c
}

func (d diskBlobs) Open(cid string) (BlobFile, int64, error) { return d.s.Open(d.cid(cid)) }
func (d diskBlobs) Release(cid string, after time.Duration)  { d.s.Release(d.cid(cid), after) }
func (d diskBlobs) Keep(cid string)                          { d.s.Keep(d.cid(cid)) }
func (d diskBlobs) Has(cid string) bool                      { return d.s.Has(d.cid(cid)) }
func (d diskBlobs) Discard(pending string) error             { return d.s.Discard(pending) }
func (d diskBlobs) SweepPending(keep func(string) bool) (int, error) {
	return d.s.SweepPending(keep)
}
func (d diskBlobs) List() ([]string, error) {
	cids, err := d.s.List()
	out := make([]string, len(cids))
	for i, c := range cids {
		out[i] = c.String()
	}
	return out, err
}
func (d diskBlobs) Seal(ctx context.Context, pending string) (string, error) {
	c, err := d.s.Seal(ctx, pending)
	return c.String(), err
}

// openBlobs opens a blob store in a fresh directory, closed when the test
// ends.
func openBlobs(t *testing.T) *blobstore.Store {
	t.Helper()
	bs, err := blobstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	return bs
}

func putBlob(t *testing.T, s *blobstore.Store, content string) string {
	t.Helper()
	c, _, err := s.Put(context.Background(), bytes.NewReader([]byte(content)), -1)
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

// quoteWithFile is a quote of type typ at status whose one file is cid,
// cut (built-in) into one piece stored until end.
func quoteWithFile(id, typ string, status int, cid string, end time.Time) quoteState {
	q := quoteState{Quote: sluice.Quote{ID: id, Type: typ, Lengths: []int64{5}, Amount: "0", Status: status,
		Files: []sluice.StoredFile{{Name: "a.txt", CID: cid, Length: 5}}}}
	if typ == "sluice" {
		q.Chunks = []sluice.Chunk{{FileHash: sluice.HashBytes([]byte(id)), Size: 5, Quote: id, End: end}}
	} else {
		q.BackendID, q.HandedOff = "backend-"+id, true
	}
	return q
}

// TestStoredFilesLeaveWhenNoQuoteNeedsThem: an uploaded file stays in the
// temporary store while a quote needs it, and is removed the retention
// period after the last need ended: a failed quote's at once, a built-in
// quote's at the end of its storage period (the latest of the quotes that
// share the file), a microservice's once it reports a final status, and a
// file no quote names at start-up. A restart in between keeps the
// schedule.
func TestStoredFilesLeaveWhenNoQuoteNeedsThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		bs, err := blobstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		shared, failed, orphan, unplaced, proxied := putBlob(t, bs, "shared"), putBlob(t, bs, "failed"),
			putBlob(t, bs, "orphan"), putBlob(t, bs, "unplaced"), putBlob(t, bs, "proxied")
		t0 := time.Now()
		const retention = 10 * time.Minute
		const interval = time.Minute // startWith's
		qs := []quoteState{
			quoteWithFile("short", "sluice", sluice.StatusDone, shared, t0.Add(2*time.Hour)),
			quoteWithFile("long", "sluice", sluice.StatusDone, shared, t0.Add(5*time.Hour)),
			quoteWithFile("unpaid", "sluice", sluice.StatusLowAllowance, failed, t0.Add(5*time.Hour)),
			quoteWithFile("unplaced", "sluice", sluice.StatusUploading, unplaced, t0.Add(time.Hour)),
			quoteWithFile("proxied", "arweave", sluice.StatusUploading, proxied, time.Time{}),
		}
		store := newMemStore()
		for i := range qs {
			if err := store.Write(ctx, []sluice.Record{quoteRecord(&qs[i])}); err != nil {
				t.Fatal(err)
			}
		}
		start := func(bs *blobstore.Store) *node {
			return startWith(t, store, Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention, Redundancy: 1}})
		}
		n := start(bs)
		stored := func(want map[string]bool) {
			t.Helper()
			names := map[string]string{shared: "shared", failed: "failed", orphan: "orphan", unplaced: "unplaced", proxied: "proxied"}
			for cid, in := range want {
				if got := bs.Has(diskBlobs{}.cid(cid)); got != in {
					t.Errorf("after %v: file %s stored: %v, want %v", time.Since(t0), names[cid], got, in)
				}
			}
		}
		all := map[string]bool{shared: true, failed: true, orphan: true, unplaced: true, proxied: true}

		sleepUntil(t0.Add(retention - time.Second))
		stored(all)
		sleepUntil(t0.Add(retention))
		stored(map[string]bool{shared: true, failed: false, orphan: false, unplaced: true, proxied: true})

		// The unplaced quote fails an interval after its storage end.
		failedAt := t0.Add(time.Hour + interval)
		sleepUntil(failedAt.Add(retention - time.Second))
		if q := storedQuote(t, store, "unplaced"); q.Status != sluice.StatusInternalError {
			t.Fatalf("unplaced quote: status %d, want 401", q.Status)
		}
		stored(map[string]bool{unplaced: true})
		sleepUntil(failedAt.Add(retention))
		stored(map[string]bool{unplaced: false, shared: true})

		// Past the short quote's end the long one still needs the file,
		// also after a restart.
		sleepUntil(t0.Add(2*time.Hour + retention + time.Second))
		stored(map[string]bool{shared: true})
		n.stop()
		bs.Close()
		if bs, err = blobstore.Open(dir); err != nil {
			t.Fatal(err)
		}
		defer bs.Close()
		n = start(bs)
		defer n.stop()
		sleepUntil(t0.Add(5*time.Hour + retention - time.Second))
		stored(map[string]bool{shared: true, proxied: true})
		sleepUntil(t0.Add(5*time.Hour + retention))
		stored(map[string]bool{shared: false, proxied: true})

		// The microservice reports the upload done.
		if _, err := n.dir.Ask(ctx, quoteIdentity("proxied"), &SetQuoteStatus{Status: sluice.StatusDone}); err != nil {
			t.Fatal(err)
		}
		done := time.Now()
		sleepUntil(done.Add(retention - time.Second))
		stored(map[string]bool{proxied: true})
		sleepUntil(done.Add(retention))
		stored(map[string]bool{proxied: false})
	})
}

// TestSealClaimsAReleasedFile: a file uploaded again while the same bytes
// wait for their removal (the quote that had them failed) is kept for the
// new quote, then released when that one ends.
func TestSealClaimsAReleasedFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		content := "the same bytes twice"
		cid := putBlob(t, bs, content)
		store := newMemStore()
		old := quoteWithFile("unpaid", "sluice", sluice.StatusPaymentFailed, cid, time.Now().Add(time.Hour))
		if err := store.Write(ctx, []sluice.Record{quoteRecord(&old)}); err != nil {
			t.Fatal(err)
		}
		n := startWith(t, store, Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention, Redundancy: 1}})
		defer n.stop()
		released := time.Now()

		time.Sleep(retention / 2)
		id := uploadFree(t, n, bs, content, time.Hour)
		synctest.Wait()
		if q := storedQuote(t, store, id); len(q.Files) != 1 || q.Files[0].CID != cid || q.Status != sluice.StatusUploading {
			t.Fatalf("new quote: %+v, want one file sealed as %s at 300", q.Files, cid)
		}

		sleepUntil(released.Add(retention + time.Second))
		if !bs.Has(diskBlobs{}.cid(cid)) {
			t.Fatal("file removed while a new quote of the same bytes is being stored")
		}
		// No farmer takes the piece: the quote fails an interval after its
		// storage end, and the file goes a retention period later.
		end := storedQuote(t, store, id).Chunks[0].End
		sleepUntil(end.Add(time.Minute + retention - time.Second))
		if q := storedQuote(t, store, id); q.Status != sluice.StatusInternalError || !bs.Has(diskBlobs{}.cid(cid)) {
			t.Fatalf("before the retention period ends: status %d, stored %v; want 401 and stored", q.Status, bs.Has(diskBlobs{}.cid(cid)))
		}
		sleepUntil(end.Add(time.Minute + retention))
		if bs.Has(diskBlobs{}.cid(cid)) {
			t.Fatal("file still stored a retention period after its last quote failed")
		}
	})
}

// TestPieceKeepsItsSourceWhenItsQuoteFails: a piece two quotes share is
// read from the file of the quote that wants it longest. When that quote
// fails early, the piece is still handed out until its end (the other
// quote is still being placed), so the file it is read from stays.
func TestPieceKeepsItsSourceWhenItsQuoteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		n := startWith(t, newMemStore(), Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention,
			Redundancy: 1, ChunkSize: 16}})
		defer n.stop()
		const block = "0123456789abcdef"
		short := uploadFree(t, n, bs, block+"short", time.Hour)
		long := uploadFree(t, n, bs, block+"the longer one", 5*time.Hour)
		synctest.Wait()
		if err := n.FailQuote(ctx, long, sluice.StatusInternalError); err != nil {
			t.Fatal(err)
		}
		time.Sleep(retention + time.Second)
		synctest.Wait()
		if q := storedQuote(t, n.store(), short); q.Status != sluice.StatusUploading {
			t.Fatalf("short quote: status %d, want 300", q.Status)
		}
		took := 0
		for _, ch := range n.pool.take("farmer", 1<<20, 0, time.Now()) {
			took++
			f, _, err := n.cfg.Uploads.Blobs.Open(ch.Source)
			if err != nil {
				t.Errorf("piece %x handed out from %s: %v", ch.FileHash[:4], ch.Source, err)
				continue
			}
			f.Close()
		}
		if took == 0 {
			t.Fatal("no piece handed out")
		}
	})
}

// releasedAfterSeal is the blob store with a release that fires right
// after the first Seal, before the quote can claim the blob.
type releasedAfterSeal struct {
	diskBlobs
	fired *bool
}

func (r releasedAfterSeal) Seal(ctx context.Context, pending string) (string, error) {
	cid, err := r.diskBlobs.Seal(ctx, pending)
	if err == nil && !*r.fired {
		*r.fired = true
		r.s.Remove(r.cid(cid))
	}
	return cid, err
}

// TestSealAgainWhenTheBlobWentMeanwhile: a release that removes the blob
// between Seal and the quote's claim does not leave the quote with a CID
// whose file is gone: the file is sealed again from its pending copy.
func TestSealAgainWhenTheBlobWentMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := openBlobs(t)
		fired := false
		n := startWith(t, newMemStore(), Config{Uploads: UploadConfig{
			Blobs: releasedAfterSeal{diskBlobs{bs}, &fired}, Redundancy: 1}})
		defer n.stop()
		id := uploadFree(t, n, bs, "bytes released while sealed", time.Hour)
		synctest.Wait()
		q := storedQuote(t, n.store(), id)
		if !fired || len(q.Files) != 1 || q.Files[0].CID == "" {
			t.Fatalf("quote: %+v (release fired: %v), want one sealed file", q.Files, fired)
		}
		if !bs.Has(diskBlobs{}.cid(q.Files[0].CID)) {
			t.Fatalf("quote %s (status %d) names file %s, which is gone", id, q.Status, q.Files[0].CID)
		}
	})
}

// TestUnreadableQuoteKeepsUnclaimedFiles: when a quote record cannot be
// read at start-up, the files no readable quote names may be its own, so
// none of them is released.
func TestUnreadableQuoteKeepsUnclaimedFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		orphan := putBlob(t, bs, "whose file is this?")
		store := newMemStore()
		bad := sluice.Record{Kind: sluice.KindQuote, ID: "unreadable", Version: 3, Live: true, State: []byte("{not json")}
		if err := store.Write(ctx, []sluice.Record{bad}); err != nil {
			t.Fatal(err)
		}
		n := startWith(t, store, Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention, Redundancy: 1}})
		defer n.stop()
		sleepUntil(time.Now().Add(2 * retention))
		if !bs.Has(diskBlobs{}.cid(orphan)) {
			t.Fatal("a file no readable quote names was removed although a quote record could not be read")
		}
	})
}

// TestPieceNeedsPerSource: a piece read from a file for good (a quote
// whose storage never ends) keeps that file when a quote with an end joins
// the piece with a file of its own: each file the piece may be read from
// is its own need.
func TestPieceNeedsPerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		n := startWith(t, newMemStore(), Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention, Redundancy: 1}})
		defer n.stop()
		forever, ending := putBlob(t, bs, "kept for good"), putBlob(t, bs, "kept for an hour")
		h := sluice.HashBytes([]byte("the shared piece"))
		n.pool.add("q-forever", []sluice.Chunk{{FileHash: h, Size: 16, Quote: "q-forever", Source: forever}})
		n.pool.add("q-ending", []sluice.Chunk{{FileHash: h, Size: 16, Quote: "q-ending", Source: ending, End: time.Now().Add(time.Hour)}})
		sleepUntil(time.Now().Add(time.Hour + time.Minute + retention + time.Second))
		if !bs.Has(diskBlobs{}.cid(forever)) {
			t.Fatal("the file a piece is read from for good was removed when another quote's need of the piece ended")
		}
		if bs.Has(diskBlobs{}.cid(ending)) {
			t.Fatal("the ending quote's file is still stored an interval and a retention period after its end")
		}
	})
}

// TestPieceNeedKeepsTheLaterEnd: two quotes with the same file share its
// pieces; when the one that ends first is added last (a restart re-adds
// quotes in record order), the piece still keeps the file until the later
// end.
func TestPieceNeedKeepsTheLaterEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := openBlobs(t)
		const retention = 10 * time.Minute
		n := startWith(t, newMemStore(), Config{Uploads: UploadConfig{Blobs: diskBlobs{bs}, Retention: retention, Redundancy: 1}})
		defer n.stop()
		file := putBlob(t, bs, "one file, two quotes")
		h := sluice.HashBytes([]byte("one file, two quotes"))
		t0 := time.Now()
		n.pool.add("later", []sluice.Chunk{{FileHash: h, Size: 20, Quote: "later", Source: file, End: t0.Add(5 * time.Hour)}})
		n.pool.add("sooner", []sluice.Chunk{{FileHash: h, Size: 20, Quote: "sooner", Source: file, End: t0.Add(time.Hour)}})
		sleepUntil(t0.Add(5*time.Hour + time.Minute + retention - time.Second))
		if !bs.Has(diskBlobs{}.cid(file)) {
			t.Fatal("the shared file went before the later quote's end, an interval and the retention")
		}
		sleepUntil(t0.Add(5*time.Hour + time.Minute + retention))
		if bs.Has(diskBlobs{}.cid(file)) {
			t.Fatal("the shared file is still stored after the later end, an interval and the retention")
		}
	})
}
