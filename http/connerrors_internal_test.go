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
		if got, ok := rewritePlainError([]byte(p), "/", true, true); ok {
			t.Errorf("%q rewritten to %q", p, got)
		}
	}
	got, ok := rewritePlainError([]byte("HTTP/1.1 400 Bad Request: missing required Host header"+plainErrorHeaders+"400 Bad Request: missing required Host header"),
		"/api/downstream/v1/new/x", true, true)
	want := "HTTP/1.1 400 Bad Request: missing required Host header\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n" +
		"Content-Length: 72\r\nContent-Type: application/json\r\n\r\n" +
		`{"status":"error","message":"Bad Request: missing required Host header"}`
	if !ok || string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
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
		srv.Listener = Listener(srv.Listener)
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
