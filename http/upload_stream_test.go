package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/blobstore"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/blobs"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
)

// randomBytes returns n pseudo-random bytes determined by seed.
func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// postFiles uploads files as multipart parts file1..fileN. With chunked
// set the body is streamed through a pipe without a Content-Length, as a
// client that does not know the length sends it; otherwise it is sent
// whole with its length.
func postFiles(t *testing.T, base, quoteID, nonce, sig string, chunked bool, files ...[]byte) reply {
	t.Helper()
	boundary := multipart.NewWriter(io.Discard).Boundary()
	write := func(w io.Writer) error {
		mw := multipart.NewWriter(w)
		if err := mw.SetBoundary(boundary); err != nil {
			return err
		}
		for i, f := range files {
			fw, err := mw.CreateFormFile(fmt.Sprintf("file%d", i+1), fmt.Sprintf("f%d.bin", i+1))
			if err != nil {
				return err
			}
			if _, err := fw.Write(f); err != nil {
				return err
			}
		}
		return mw.Close()
	}
	var body io.Reader
	if chunked {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(write(pw)) }()
		body = pr
	} else {
		var buf bytes.Buffer
		if err := write(&buf); err != nil {
			t.Fatal(err)
		}
		body = &buf
	}
	req, err := http.NewRequest("POST", base+"/upload?"+url.Values{"quoteId": {quoteID}, "nonce": {nonce}, "signature": {sig}}.Encode(), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := reply{code: res.StatusCode}
	r.raw, _ = io.ReadAll(res.Body)
	_ = json.Unmarshal(r.raw, &r.body)
	return r
}

// fetchBlob GETs /ipfs/{cid} from the node's private listener.
func fetchBlob(t *testing.T, n *nodetest.Node, cid string) (int, []byte) {
	t.Helper()
	return fetchFrom(t, n.Private, cid)
}

// fetchFrom GETs /ipfs/{cid} from the listener at base.
func fetchFrom(t *testing.T, base, cid string) (int, []byte) {
	t.Helper()
	res, err := http.Get(base + "/ipfs/" + cid)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// TestUploadLargeFiles streams files larger than the buffers between the
// connection and the store (the multipart read buffer and the store's
// chunks) and a tiny one, chunked and with a length, and checks that each
// file is stored under the CID of its bytes with those bytes.
func TestUploadLargeFiles(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n := nodetest.Start(t, s.Open(t), nodetest.Options{})
		u := newEthUser()
		for i, chunked := range []bool{true, false} {
			t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
				files := [][]byte{randomBytes(byte(3*i), 3<<20+12345), randomBytes(byte(3*i+1), 1), randomBytes(byte(3*i+2), 64<<10)}
				var lengths []any
				for _, f := range files {
					lengths = append(lengths, map[string]int{"length": len(f)})
				}
				q := do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": lengths, "duration": 60,
					"payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
				if q.code != 201 {
					t.Fatalf("getQuote: %d %s", q.code, q.raw)
				}
				id := q.str("quoteId")
				nonce, sig := u.next(id)
				if r := postFiles(t, n.URL, id, nonce, sig, chunked, files...); r.code != 200 {
					t.Fatalf("upload: got %d %s, want 200", r.code, r.raw)
				}
				// The reply came before the files were hashed; the quote
				// seals them next.
				waitSealed(t, n.Engine, id)

				nonce, sig = u.next("")
				h := do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil)
				var hist struct {
					Data []struct {
						QuoteID string `json:"quoteId"`
						Files   []struct {
							CID    string `json:"cid"`
							Length int64  `json:"length"`
						} `json:"files"`
					} `json:"data"`
				}
				if err := json.Unmarshal(h.raw, &hist); err != nil || h.code != 200 || len(hist.Data) == 0 || hist.Data[0].QuoteID != id {
					t.Fatalf("history: %d %s", h.code, h.raw)
				}
				got := hist.Data[0].Files
				if len(got) != len(files) {
					t.Fatalf("files in history: got %d, want %d", len(got), len(files))
				}
				for j, f := range files {
					want := blobstore.Sum(f).String()
					if got[j].CID != want || got[j].Length != int64(len(f)) {
						t.Errorf("file %d: got %s (%d bytes), want %s (%d bytes)", j+1, got[j].CID, got[j].Length, want, len(f))
						continue
					}
					code, b := fetchBlob(t, n, want)
					if code != 200 || !bytes.Equal(b, f) {
						t.Errorf("file %d from /ipfs/: got %d and %d bytes, want 200 and the %d bytes sent", j+1, code, len(b), len(f))
					}
				}
			})
		}
	})
}

// TestUploadLargerThanQuoted sends one byte more than quoted, in a file
// that spans several buffers: the upload is refused, the quote fails with
// status 402, and the file is stored neither whole nor cut at the quoted
// length.
func TestUploadLargerThanQuoted(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n := nodetest.Start(t, s.Open(t), nodetest.Options{})
		u := newEthUser()
		for _, chunked := range []bool{true, false} {
			t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
				const quoted = 1<<20 + 5
				file := randomBytes(7, quoted+1)
				q := do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": []any{map[string]int{"length": quoted}}, "duration": 60,
					"payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
				if q.code != 201 {
					t.Fatalf("getQuote: %d %s", q.code, q.raw)
				}
				id := q.str("quoteId")
				nonce, sig := u.next(id)
				r := postFiles(t, n.URL, id, nonce, sig, chunked, file)
				if r.code != 400 || !strings.Contains(r.str("error"), "larger than quoted") {
					t.Fatalf("upload: got %d %s, want 400 larger than quoted", r.code, r.raw)
				}
				if st := do(t, "GET", n.URL+"/getStatus?quoteId="+id, nil); st.body["status"] != 402.0 {
					t.Fatalf("status: got %s, want 402", st.raw)
				}
				for _, b := range [][]byte{file, file[:quoted]} {
					if code, _ := fetchBlob(t, n, blobstore.Sum(b).String()); code != 404 {
						t.Errorf("/ipfs/ of %d bytes: got %d, want 404", len(b), code)
					}
				}
			})
		}
	})
}

// TestUploadNotMultipart: a body that is not multipart, or multipart
// without a boundary, is refused before anything is read or stored.
func TestUploadNotMultipart(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n := nodetest.Start(t, s.Open(t), nodetest.Options{})
		u := newEthUser()
		for _, ct := range []string{"application/json", "multipart/form-data", "multipart/form-data; boundary=", "text/plain; boundary=x", ""} {
			t.Run(ct, func(t *testing.T) {
				q := do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 5}}, "duration": 60,
					"payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
				id := q.str("quoteId")
				nonce, sig := u.next(id)
				r := do(t, "POST", n.URL+"/upload?"+url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {sig}}.Encode(), "hello", "Content-Type", ct)
				wantUploaderError(t, r, 400, "No file sent alongside the request: want multipart/form-data with fields file1..fileN.")
			})
		}
	})
}

// waitSealed waits (bounded) until the quote's files all have their CIDs.
func waitSealed(t *testing.T, e *actors.Engine, id string) sluice.Quote {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, err := e.Quote(context.Background(), id)
		if err != nil {
			t.Fatalf("quote %s: %v", id, err)
		}
		if len(q.Files) > 0 && q.Sealed() {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("quote %s: files never sealed (status %d)", id, q.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eachReopenableStore runs fn on both stores, handing it a function that
// opens the same location every time it is called.
func eachReopenableStore(t *testing.T, fn func(t *testing.T, open func() actors.Store)) {
	for _, s := range nodetest.Stores(t) {
		t.Run(s.Name, func(t *testing.T) { fn(t, s.At(t)) })
	}
}

// diskNode is a node whose blob directory the test chooses, so that a
// second node can be started on the same store and directory after the
// first one stopped.
type diskNode struct {
	URL    string
	Engine *actors.Engine
	Blobs  *blobstore.Store
	stop   func()
}

// startDiskNode runs a node on store and the blob directory dir. wrap, if
// not nil, wraps the blob store the engine uses (the HTTP side uses the
// real one). Stop ends it; the test's end does too.
func startDiskNode(t *testing.T, store actors.Store, dir string, wrap func(actors.Blobs) actors.Blobs) *diskNode {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	bs, err := blobstore.Open(dir)
	if err != nil {
		t.Fatalf("open blob store: %v", err)
	}
	ad := blobs.Adapter{Store: bs}
	var eb actors.Blobs = ad
	if wrap != nil {
		eb = wrap(ad)
	}
	m := metrics.New()
	w := persistence.NewWriter(store, persistence.WriterOptions{})
	e, err := actors.Start(context.Background(), actors.Config{
		Terms:   sluice.Terms{Interval: time.Minute, Challenges: 256},
		Uploads: actors.UploadConfig{Blobs: eb},
	}, store, w, m, log)
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	srv := sluicehttp.New(sluicehttp.Config{Blobs: ad, BlobHandler: bs.Handler("/ipfs/")}, m, log)
	srv.SetFarmers(e)
	hs := httptest.NewServer(srv)
	var once sync.Once
	n := &diskNode{URL: hs.URL, Engine: e, Blobs: bs, stop: func() {
		once.Do(func() {
			hs.Close()
			e.Stop()
			w.Close()
			store.Close()
			bs.Close()
		})
	}}
	t.Cleanup(n.stop)
	return n
}

// sealBlocked is the engine's blob store with a Seal that never finishes:
// it reports that sealing began, then waits until the engine stops it.
type sealBlocked struct {
	actors.Blobs
	began chan string
}

func (b sealBlocked) Seal(ctx context.Context, pending string) (string, error) {
	b.began <- pending
	<-ctx.Done()
	return "", ctx.Err()
}

// pendingFiles lists the blob directory's pending area.
func pendingFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "pending"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestUploadSealedAfterRestart acknowledges an upload and stops the node
// before the file is sealed (the seal step blocks), next to a pending
// file of an upload that was never acknowledged. A node restarted on the
// same store and blob directory removes the orphan, keeps and seals the
// acknowledged file under the CID of its bytes, serves it back byte for
// byte, and the quote goes on to storage.
func TestUploadSealedAfterRestart(t *testing.T) {
	eachReopenableStore(t, func(t *testing.T, open func() actors.Store) {
		dir := t.TempDir()
		began := make(chan string, 1)
		n := startDiskNode(t, open(), dir, func(b actors.Blobs) actors.Blobs { return sealBlocked{Blobs: b, began: began} })
		u := newEthUser()
		file := randomBytes(9, 2<<20+77)
		q := do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice", "files": []any{map[string]int{"length": len(file)}},
			"duration": 60, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
		if q.code != 201 {
			t.Fatalf("getQuote: %d %s", q.code, q.raw)
		}
		id := q.str("quoteId")
		nonce, sig := u.next(id)
		if r := postFiles(t, n.URL, id, nonce, sig, false, file); r.code != 200 {
			t.Fatalf("upload: got %d %s, want 200", r.code, r.raw)
		}
		acked := <-began // the seal step runs, and will not finish
		orphan, _, err := n.Blobs.Stage(context.Background(), bytes.NewReader([]byte("a request that crashed before its acknowledgement")), -1)
		if err != nil {
			t.Fatal(err)
		}
		before, err := n.Engine.Quote(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(before.Files) != 1 || before.Files[0].Pending != acked || before.Files[0].CID != "" {
			t.Fatalf("files before sealing: got %+v, want one pending %s without a CID", before.Files, acked)
		}
		want := blobstore.Sum(file).String()
		if code, _ := fetchFrom(t, n.URL, want); code != 404 {
			t.Fatalf("/ipfs/ before sealing: got %d, want 404", code)
		}
		n.stop()

		n = startDiskNode(t, open(), dir, nil)
		after := waitSealed(t, n.Engine, id)
		if got := after.Files[0].CID; got != want {
			t.Fatalf("CID after restart: got %s, want %s", got, want)
		}
		if got := pendingFiles(t, dir); len(got) != 0 {
			t.Errorf("pending after sealing: got %v, want none (%s sealed, %s an orphan)", got, acked, orphan)
		}
		code, b := fetchFrom(t, n.URL, want)
		if code != 200 || !bytes.Equal(b, file) {
			t.Fatalf("/ipfs/%s: got %d and %d bytes, want 200 and the %d bytes sent", want, code, len(b), len(file))
		}
		// Free built-in type: sealed, then cut and offered to farmers.
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := do(t, "GET", n.URL+"/getStatus?quoteId="+id, nil)
			if st.body["status"] == float64(sluice.StatusUploading) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never reached %d: %s", sluice.StatusUploading, st.raw)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestUploadOverQuoteRemovesEarlierFiles: when a later file of a
// multi-file upload goes over the quoted total, the request's earlier
// files, already on disk, are removed too.
func TestUploadOverQuoteRemovesEarlierFiles(t *testing.T) {
	eachReopenableStore(t, func(t *testing.T, open func() actors.Store) {
		dir := t.TempDir()
		n := startDiskNode(t, open(), dir, nil)
		u := newEthUser()
		q := do(t, "POST", n.URL+"/getQuote", map[string]any{"type": "sluice",
			"files":    []any{map[string]int{"length": 1 << 20}, map[string]int{"length": 10}},
			"duration": 60, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
		id := q.str("quoteId")
		nonce, sig := u.next(id)
		r := postFiles(t, n.URL, id, nonce, sig, false, randomBytes(1, 1<<20), randomBytes(2, 11))
		if r.code != 400 || !strings.Contains(r.str("error"), "larger than quoted") {
			t.Fatalf("upload: got %d %s, want 400 larger than quoted", r.code, r.raw)
		}
		if got := pendingFiles(t, dir); len(got) != 0 {
			t.Errorf("pending: got %v, want none", got)
		}
		if got, _ := n.Blobs.List(); len(got) != 0 {
			t.Errorf("blobs: got %v, want none", got)
		}
	})
}
