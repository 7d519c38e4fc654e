package http_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/blobstore"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/metrics"
)

// rawExchange sends req as it is on a new connection to addr (host:port)
// and reads one reply.
func rawExchange(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reply to %.60q: %v", req, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// TestNetHTTPErrorsInTheAPIsFormat: the replies net/http makes before any
// handler runs (oversized headers, unparsable requests, unknown transfer
// codings and versions, unsupported expectations) come as JSON in the
// format of the API the path belongs to, not as net/http's plain text.
func TestNetHTTPErrorsInTheAPIsFormat(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	public := strings.TrimPrefix(n.URL, "http://")
	private := strings.TrimPrefix(n.Private, "http://")
	huge := "X-Big: " + strings.Repeat("a", 80<<10) + "\r\n"

	cases := []struct {
		name, addr, req string
		code            int
		farmer          bool   // the farmer API's {"status", "message"}
		message         string // part of the message
	}{
		{"headers too large, farmer path", public,
			"GET /api/downstream/v1/challenge/abc HTTP/1.1\r\nHost: x\r\n" + huge + "\r\n", 431, true, "Too Large"},
		{"headers too large, uploader path", public,
			"POST /getQuote HTTP/1.1\r\nHost: x\r\n" + huge + "\r\n", 431, false, "Too Large"},
		{"malformed Content-Length", public,
			"POST /api/downstream/v1/answer/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n", 400, true, "Bad Request"},
		{"two different Content-Lengths", public,
			"POST /upload?quoteId=q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, false, "Bad Request"},
		{"no Host header", public,
			"GET /api/downstream HTTP/1.1\r\n\r\n", 400, true, "Host"},
		{"unknown transfer coding", public,
			"POST /getQuote HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zip\r\n\r\n", 501, false, "transfer encoding"},
		{"unknown HTTP version", public,
			"GET /api/downstream/v1/status/list/1 HTTP/9.9\r\nHost: x\r\n\r\n", 505, true, "version"},
		{"unsupported Expect", public,
			"POST /getQuote HTTP/1.1\r\nHost: x\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n{}", 417, false, "Expect"},
		{"garbage request line", public,
			"\x00\x01\x02\r\n\r\n", 400, false, "Bad Request"},
		{"private listener", private,
			"POST /api/downstream/register HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, false, "Bad Request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, body := rawExchange(t, tc.addr, tc.req)
			if res.StatusCode != tc.code {
				t.Fatalf("got %d %s, want %d", res.StatusCode, body, tc.code)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q, want application/json; body %s", ct, body)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			var msg string
			if tc.farmer {
				if got["status"] != "error" || len(got) != 2 {
					t.Fatalf("body %s, want the farmer API's {\"status\": \"error\", \"message\"}", body)
				}
				msg, _ = got["message"].(string)
			} else {
				if len(got) != 1 {
					t.Fatalf("body %s, want the uploader API's {\"error\"}", body)
				}
				msg, _ = got["error"].(string)
			}
			if !strings.Contains(msg, tc.message) {
				t.Fatalf("message %q, want one containing %q", msg, tc.message)
			}
			if tc.addr == public && res.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("no CORS header on a public error: browsers could not read it")
			}
		})
	}
}

// TestNetHTTPErrorToHEADHasNoBody: net/http's reply to a HEAD request it
// refuses itself carries headers only, as any reply to HEAD, and the JSON
// rewriting leaves it so.
func TestNetHTTPErrorToHEADHasNoBody(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(n.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "HEAD /getQuote HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(c) // the reply closes the connection
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.1 417 ") {
		t.Fatalf("reply %q, want a 417", raw)
	}
	if body != "" {
		t.Fatalf("reply to HEAD has a body: %q", body)
	}
}

// TestWrappedConnectionsStillServe: a kept-alive connection through the
// wrapped listener answers several requests, and a handler's own error
// reply stays as the handler wrote it.
func TestWrappedConnectionsStillServe(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(n.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, want := range []int{200, 404, 200} {
		path := "/healthz"
		if want == 404 {
			path = "/api/downstream/v1/nowhere"
		}
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || res.Header.Get("Date") == "" {
			t.Fatalf("request %d: got %d %s (Date %q), want %d from the handler", i, res.StatusCode, body, res.Header.Get("Date"), want)
		}
		if want == 404 && !strings.Contains(string(body), `"status":"error"`) {
			t.Fatalf("404 body %s, want the farmer API's format", body)
		}
	}
	// A request net/http refuses itself, after those on the same
	// connection, is answered in JSON too.
	huge := "X-Big: " + strings.Repeat("a", 80<<10) + "\r\n"
	if _, err := io.WriteString(c, "GET /api/downstream/v1/status/list/1 HTTP/1.1\r\nHost: x\r\n"+huge+"\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 431 || string(body) != `{"status":"error","message":"Request Header Fields Too Large"}` {
		t.Fatalf("431 after kept-alive requests: %d %s", res.StatusCode, body)
	}
}

// TestStoredFilesLikeErrorRepliesServedAsStored: a stored file whose
// bytes, at the boundaries where a download is written in pieces, look
// exactly like one of net/http's error replies is served byte for byte,
// on both listeners: only the first write of a reply is ever looked at.
func TestStoredFilesLikeErrorRepliesServedAsStored(t *testing.T) {
	bs, err := blobstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	srv := sluicehttp.New(sluicehttp.Config{BlobHandler: bs.Handler("/ipfs/")},
		metrics.New(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	for _, public := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(sluicehttp.JSONErrors(hs, ln, public))
		cl := &http.Client{Timeout: 10 * time.Second}
		for _, lead := range []int{0, 4 << 10, 8 << 10, 16 << 10, 40 << 10} {
			for _, tail := range []string{
				"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
				"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: Mon, 07 Dec 2026 22:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
			} {
				file := append(bytes.Repeat([]byte("a"), lead), tail...)
				c, _, err := bs.Put(context.Background(), bytes.NewReader(file), int64(len(file)))
				if err != nil {
					t.Fatal(err)
				}
				// Twice on one kept-alive connection: the second reply's
				// first write comes after the connection went idle.
				for range 2 {
					res, err := cl.Get("http://" + ln.Addr().String() + "/ipfs/" + c.String())
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(res.Body)
					res.Body.Close()
					if err != nil || !bytes.Equal(got, file) {
						t.Fatalf("public %v, %d bytes then %.12q: got %d bytes (%v), want the file", public, lead, tail, len(got), err)
					}
				}
			}
		}
		hs.Close()
	}
}

// TestDeclaredOversizedBodiesRefusedAtOnce: a body whose Content-Length
// is over the route's limit gets 413 before any of it is read, so the
// connection is not held for the read timeout, and a client asking
// Expect: 100-continue is not invited to send it.
func TestDeclaredOversizedBodiesRefusedAtOnce(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	public := strings.TrimPrefix(n.URL, "http://")
	private := strings.TrimPrefix(n.Private, "http://")
	const tb = "Content-Length: 999999999999\r\n"
	cases := []struct{ name, addr, head string }{
		{"batch answer", public, "POST /api/downstream/v1/answer/0123456789abcdef0123456789abcdef HTTP/1.1\r\nContent-Type: application/json\r\n"},
		{"single answer", public, "POST /api/downstream/v1/answer/0123456789abcdef0123456789abcdef/" + strings.Repeat("ab", 32) + " HTTP/1.1\r\n"},
		{"challenge list", public, "POST /api/downstream/v1/challenge/0123456789abcdef0123456789abcdef HTTP/1.1\r\n"},
		{"gzip-labelled answer", public, "POST /api/downstream/v1/answer/0123456789abcdef0123456789abcdef HTTP/1.1\r\nContent-Encoding: gzip\r\n"},
		{"getQuote", public, "POST /getQuote HTTP/1.1\r\nContent-Type: application/json\r\n"},
		{"getStatus, JSON", public, "POST /getStatus HTTP/1.1\r\nContent-Type: application/json\r\n"},
		{"getStatus, form", public, "POST /getStatus HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"},
		{"register", private, "POST /register HTTP/1.1\r\nContent-Type: application/json\r\n"},
	}
	for _, tc := range cases {
		for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
			t.Run(tc.name+" "+strings.TrimSpace(expect), func(t *testing.T) {
				res, body := rawExchange(t, tc.addr, tc.head+"Host: x\r\n"+tb+expect+"\r\n{")
				if res.StatusCode != http.StatusRequestEntityTooLarge {
					t.Fatalf("got %d %s, want 413 before the body is read", res.StatusCode, body)
				}
				if !bytes.Contains(body, []byte("too large")) {
					t.Fatalf("body %s, want the API's too-large message", body)
				}
			})
		}
	}
}
