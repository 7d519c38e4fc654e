package http_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/nodetest"
)

// An upload whose body ends before its closing boundary (a client that
// gave up, or a broken one) is bad input: 400, never a 503, and the quote
// still waits for its files.
func TestUploadCutShortIsBadInput(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n := nodetest.Start(t, s.Open(t), nodetest.Options{})
		u := newEthUser()
		file := randomBytes(9, 200<<10)
		id := quoteFor(t, n.URL, u, len(file))

		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("file1", "f.bin")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file[:len(file)/2]) // half the file, and no closing boundary
		nonce, sig := u.next(id)
		req, err := http.NewRequest("POST", uploadURL(n.URL, id, nonce, sig), io.NopCloser(&buf))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 || !strings.Contains(string(body), "Malformed multipart body") {
			t.Fatalf("upload cut short: got %d %s, want 400 Malformed multipart body", res.StatusCode, body)
		}
		if st := do(t, "GET", n.URL+"/getStatus?quoteId="+id, nil); st.code != 200 || st.body["status"] != float64(1) {
			t.Fatalf("status after the failed upload: %d %s, want 1 (waiting for files)", st.code, st.raw)
		}
	})
}
