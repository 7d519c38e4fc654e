package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/blobstore"
	"github.com/sluicehq/sluice/internal/nodetest"
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
	res, err := http.Get(n.Private + "/ipfs/" + cid)
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
