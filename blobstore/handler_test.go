package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	s, _ := openStore(t)
	data, err := io.ReadAll(stream(7, 1000))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.Put(context.Background(), bytes.NewReader(data), -1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler("/ipfs/"))
	defer srv.Close()

	etag := `"` + c.String() + `"`
	missing := Sum([]byte("not stored"))
	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		code     int
		body     []byte            // nil: not checked
		headers  map[string]string // expected response headers
		jsonErr  bool              // body is {"error": "..."}
		emptyOut bool
	}{
		{
			name: "full GET", method: "GET", path: "/ipfs/" + c.String(),
			code: http.StatusOK, body: data,
			headers: map[string]string{
				"Content-Type":   "application/octet-stream",
				"Content-Length": "1000",
				"ETag":           etag,
				"Cache-Control":  "public, max-age=31536000, immutable",
				"Accept-Ranges":  "bytes",
			},
		},
		{
			name: "gateway query ignored", method: "GET", path: "/ipfs/" + c.String() + "?filename=a.png",
			code: http.StatusOK, body: data,
		},
		{
			name: "trailing slash", method: "GET", path: "/ipfs/" + c.String() + "/",
			code: http.StatusOK, body: data,
		},
		{
			name: "range", method: "GET", path: "/ipfs/" + c.String(),
			header: map[string]string{"Range": "bytes=10-19"},
			code:   http.StatusPartialContent, body: data[10:20],
			headers: map[string]string{
				"Content-Range":  "bytes 10-19/1000",
				"Content-Length": "10",
				"Content-Type":   "application/octet-stream",
			},
		},
		{
			name: "suffix range", method: "GET", path: "/ipfs/" + c.String(),
			header: map[string]string{"Range": "bytes=-5"},
			code:   http.StatusPartialContent, body: data[995:],
		},
		{
			name: "range past the end", method: "GET", path: "/ipfs/" + c.String(),
			header: map[string]string{"Range": "bytes=5000-6000"},
			code:   http.StatusRequestedRangeNotSatisfiable, jsonErr: true,
			headers: map[string]string{"Content-Range": "bytes */1000"},
		},
		{
			name: "if-match another CID", method: "GET", path: "/ipfs/" + c.String(),
			header: map[string]string{"If-Match": `"` + missing.String() + `"`},
			code:   http.StatusPreconditionFailed, jsonErr: true,
		},
		{
			name: "HEAD", method: "HEAD", path: "/ipfs/" + c.String(),
			code: http.StatusOK, emptyOut: true,
			headers: map[string]string{
				"Content-Length": "1000",
				"Content-Type":   "application/octet-stream",
				"ETag":           etag,
			},
		},
		{
			name: "if-none-match", method: "GET", path: "/ipfs/" + c.String(),
			header: map[string]string{"If-None-Match": etag},
			code:   http.StatusNotModified, emptyOut: true,
		},
		{
			name: "CIDv0", method: "GET", path: "/ipfs/QmPmnyA8ZaYFJknPhVBE1u4hbGqvLGvu5cxCAPb1Nqb1aq",
			code: http.StatusBadRequest, jsonErr: true,
		},
		{
			name: "garbage", method: "GET", path: "/ipfs/not-a-cid",
			code: http.StatusBadRequest, jsonErr: true,
		},
		{
			name: "missing", method: "GET", path: "/ipfs/" + missing.String(),
			code: http.StatusNotFound, jsonErr: true,
		},
		{
			name: "outside the prefix", method: "GET", path: "/other/" + c.String(),
			code: http.StatusNotFound, jsonErr: true,
		},
		{
			name: "POST", method: "POST", path: "/ipfs/" + c.String(),
			code: http.StatusMethodNotAllowed, jsonErr: true,
			headers: map[string]string{"Allow": "GET, HEAD"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code {
				t.Fatalf("status: got %d, want %d (body %q)", resp.StatusCode, tt.code, body)
			}
			for k, want := range tt.headers {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body: got %d bytes, want %d (equal: false)", len(body), len(tt.body))
			}
			if tt.emptyOut && len(body) != 0 {
				t.Errorf("body: got %d bytes, want none", len(body))
			}
			if tt.jsonErr {
				if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
					t.Errorf("Content-Type: got %q, want application/json", got)
				}
				var e struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Errorf("body: got %q (%v), want {\"error\": \"...\"}", body, err)
				}
			}
		})
	}
}

// TestHandlerLarge serves a blob bigger than any buffer and checks the
// length the client sees.
func TestHandlerLarge(t *testing.T) {
	const size = 5 << 20
	s, _ := openStore(t)
	c, _, err := s.Put(context.Background(), stream(8, size), -1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler("/ipfs/"))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/ipfs/" + c.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(size) {
		t.Errorf("Content-Length: got %s, want %d", got, size)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Errorf("body: got %d bytes, want %d", n, size)
	}
	if got, want := refEncode([]byte{0x01, 0x55, 0x12, 0x20}, h.Sum(nil)), streamCID(t, 8, size); got != want {
		t.Errorf("body: got CID %s, want %s", got, want)
	}
}
