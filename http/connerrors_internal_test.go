package http

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRewriteOnlyNetHTTPsOwnReplies: a handler's own plain-text reply,
// whatever its status, is never taken for one of net/http's.
func TestRewriteOnlyNetHTTPsOwnReplies(t *testing.T) {
	for _, p := range []string{
		// A handler's reply: sorted headers, with a Date.
		"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 07 Dec 2026 22:00:00 GMT\r\n\r\n400 Bad Request",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 07 Dec 2026 22:00:00 GMT\r\n\r\n",
		// Body bytes of a reply, written after its headers.
		"400 Bad Request",
		"HTTP/1.1 431 x" + plainErrorHeaders + "two\r\nlines",
		"HTTP/1.1 43 x" + plainErrorHeaders + "43 x",
	} {
		if status, text, ok := parsePlainError([]byte(p)); ok {
			t.Errorf("%q taken for net/http's %q %q", p, status, text)
		}
	}
	status, text, ok := parsePlainError([]byte("HTTP/1.1 400 Bad Request: missing required Host header" + plainErrorHeaders + "400 Bad Request: missing required Host header"))
	path := requestPath([]byte("GET  /api/downstream/v1/new/x?a=b HTTP/1.1\r\nHost: x\r\n"))
	got := jsonError(status, text, path, true)
	want := "HTTP/1.1 400 Bad Request: missing required Host header\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n" +
		"Content-Length: 72\r\nContent-Type: application/json\r\n\r\n" +
		`{"status":"error","message":"Bad Request: missing required Host header"}`
	if !ok || string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRequestPath(t *testing.T) {
	for head, want := range map[string]string{
		"GET /a/b HTTP/1.1\r\n":                           "/a/b",
		"POST /getQuote?x=1 HTTP/1.1\r\nHost: x":          "/getQuote",
		"GET http://h:1/api/downstream/v1/x HTTP/1.1\r\n": "/api/downstream/v1/x",
		"GET http://h HTTP/1.1\r\n":                       "/",
		"GET /api/downstream/v1/status/list/1":            "/api/downstream/v1/status/list/1", // cut short
		"GARBAGE\r\n":                                     "",
		"":                                                "",
	} {
		if got := requestPath([]byte(head)); got != want {
			t.Errorf("requestPath(%q) = %q; want %q", head, got, want)
		}
	}
}

// TestHandlerRepliesNeverMatch: plain-text errors a handler writes itself,
// even with the statuses net/http uses and Connection: close, go through
// the wrapped listener unchanged.
func TestHandlerRepliesNeverMatch(t *testing.T) {
	for _, code := range []int{400, 417, 431, 501, 505} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			http.Error(w, http.StatusText(code), code)
		}))
		srv.Listener = JSONErrors(srv.Config, srv.Listener, true)
		srv.Start()
		res, err := http.Get(srv.URL + "/api/downstream/v1/x")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		srv.Close()
		if res.StatusCode != code || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("handler's %d came back as %d %s", code, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
}
