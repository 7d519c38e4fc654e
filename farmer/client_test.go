package farmer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/farmer"
)

// envelopeStandIn is not a node: it answers every request with a fixed
// status, headers and body, and records what was asked, so that the tests
// below check only the client's HTTP envelope (paths, methods, bodies,
// error parsing).
type envelopeStandIn struct {
	status int
	header http.Header
	body   string

	method, path, contentType, reqBody string
	url                                string // where it listens
}

func (s *envelopeStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.method, s.path, s.contentType, s.reqBody = r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)
	for k, v := range s.header {
		w.Header()[k] = v
	}
	w.WriteHeader(s.status)
	_, _ = io.WriteString(w, s.body)
}

func standIn(t *testing.T, status int, body string) (*envelopeStandIn, *farmer.Client) {
	t.Helper()
	h := &envelopeStandIn{status: status, body: body, header: http.Header{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	c, err := farmer.NewClient(srv.URL+"/", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

const token = "00112233445566778899aabbccddeeff"

func TestClientErrorEnvelope(t *testing.T) {
	h, c := standIn(t, http.StatusBadRequest, `{"status":"error","message":"Nonexistent token."}`)
	_, err := c.Heartbeat(context.Background(), token)
	var apiErr *farmer.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("got %v, want an *APIError", err)
	}
	if apiErr.Status != 400 || apiErr.Message != sluice.MsgNonexistentToken {
		t.Fatalf("got %d %q, want 400 %q", apiErr.Status, apiErr.Message, sluice.MsgNonexistentToken)
	}
	if !farmer.IsNonexistentToken(err) || farmer.Retryable(err) {
		t.Fatalf("got nonexistent=%v retryable=%v, want true, false", farmer.IsNonexistentToken(err), farmer.Retryable(err))
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("error %q reveals the token", err)
	}
	if h.method != http.MethodGet || h.path != "/api/downstream/v1/heartbeat/"+token {
		t.Fatalf("got %s %s, want GET /api/downstream/v1/heartbeat/<token>", h.method, h.path)
	}
}

func TestClientRetryAfter(t *testing.T) {
	h, c := standIn(t, http.StatusServiceUnavailable, `{"status":"error","message":"Service unavailable, try again later."}`)
	h.header.Set("Retry-After", "4")
	_, err := c.Chunks(context.Background(), token, 1024)
	var apiErr *farmer.APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != 4*time.Second {
		t.Fatalf("got %v, want an APIError with RetryAfter 4s", err)
	}
	if !farmer.Retryable(err) {
		t.Fatal("503: got not retryable, want retryable")
	}
	if h.path != "/api/downstream/v1/chunk/"+token+"/1024" {
		t.Fatalf("got path %s", h.path)
	}
}

func TestClientNonJSONError(t *testing.T) {
	_, c := standIn(t, http.StatusTooManyRequests, "<html>slow down</html>")
	err := c.Ping(context.Background())
	var apiErr *farmer.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Message != "Too Many Requests" {
		t.Fatalf("got %v, want 429 Too Many Requests", err)
	}
	if !farmer.Retryable(err) {
		t.Fatal("429: got not retryable, want retryable")
	}
}

func TestClientRequests(t *testing.T) {
	var h1 sluice.FileHash
	h1[0] = 0xab
	tests := []struct {
		name       string
		body       string
		call       func(*farmer.Client) (any, error)
		method     string
		path       string
		reqBody    string // JSON, compared after normalizing; "" for none
		wantResult string // JSON of the result
	}{
		{
			name: "new with GET",
			body: `{"token":"` + token + `","type":"merkle-segment","heartbeat":{"scheme":"merkle-segment","leaf_size":1024,"leaves_per_challenge":4}}`,
			call: func(c *farmer.Client) (any, error) {
				return c.New(context.Background(), "0xAbC/x", "", "")
			},
			method:     "GET",
			path:       "/api/downstream/v1/new/0xAbC/x",
			wantResult: `{"token":"` + token + `","type":"merkle-segment","heartbeat":{"scheme":"merkle-segment","leaf_size":1024,"leaves_per_challenge":4}}`,
		},
		{
			name: "new with POST",
			body: `{"token":"` + token + `","type":"merkle-segment","heartbeat":{"scheme":"merkle-segment","leaf_size":1024,"leaves_per_challenge":4}}`,
			call: func(c *farmer.Client) (any, error) {
				r, err := c.New(context.Background(), "0xabc", "hello", "sig")
				return r.Token, err
			},
			method:     "POST",
			path:       "/api/downstream/v1/new/0xabc",
			reqBody:    `{"message":"hello","signature":"sig"}`,
			wantResult: `"` + token + `"`,
		},
		{
			name: "challenges",
			body: `{"challenges":[{"file_hash":"` + h1.String() + `","status":"no more challenges"}]}`,
			call: func(c *farmer.Client) (any, error) {
				return c.Challenges(context.Background(), token, []sluice.FileHash{h1})
			},
			method:     "POST",
			path:       "/api/downstream/v1/challenge/" + token,
			reqBody:    `{"hashes":["` + h1.String() + `"]}`,
			wantResult: `[{"file_hash":"` + h1.String() + `","status":"no more challenges"}]`,
		},
		{
			name: "answers",
			body: `{"report":[{"file_hash":"` + h1.String() + `","error":"proof invalid"}]}`,
			call: func(c *farmer.Client) (any, error) {
				return c.Answers(context.Background(), token, nil)
			},
			method:     "POST",
			path:       "/api/downstream/v1/answer/" + token,
			reqBody:    `{"proofs":[]}`,
			wantResult: `[{"file_hash":"` + h1.String() + `","error":"proof invalid"}]`,
		},
		{
			name: "delete token",
			body: `{"status":"ok"}`,
			call: func(c *farmer.Client) (any, error) {
				return nil, c.DeleteToken(context.Background(), token)
			},
			method:     "DELETE",
			path:       "/api/downstream/v1/token/" + token,
			wantResult: `null`,
		},
		{
			name:       "ping",
			body:       `{"msg":"ok"}`,
			call:       func(c *farmer.Client) (any, error) { return nil, c.Ping(context.Background()) },
			method:     "GET",
			path:       "/",
			wantResult: `null`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, c := standIn(t, http.StatusOK, tt.body)
			res, err := tt.call(c)
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if h.method != tt.method || h.path != tt.path {
				t.Fatalf("got %s %s, want %s %s", h.method, h.path, tt.method, tt.path)
			}
			if tt.reqBody != "" {
				if h.contentType != "application/json" {
					t.Fatalf("got Content-Type %q, want application/json", h.contentType)
				}
				if got, want := normJSON(t, h.reqBody), normJSON(t, tt.reqBody); got != want {
					t.Fatalf("got body %s, want %s", got, want)
				}
			}
			got, _ := json.Marshal(res)
			if g, w := normJSON(t, string(got)), normJSON(t, tt.wantResult); g != w {
				t.Fatalf("got result %s, want %s", g, w)
			}
		})
	}
}

func normJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON %q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestClientDownloadResolvesRelativeURLs(t *testing.T) {
	h, c := standIn(t, http.StatusOK, "chunk bytes")
	body, err := c.Download(context.Background(), "/api/downstream/v1/chunk/"+token+"/abc/data")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != "chunk bytes" || h.path != "/api/downstream/v1/chunk/"+token+"/abc/data" {
		t.Fatalf("got %q from %s", b, h.path)
	}

	h.status = http.StatusNotFound
	h.body = `{"status":"error","message":"contract not found"}`
	if _, err := c.Download(context.Background(), "/x"); err == nil || !strings.Contains(err.Error(), "contract not found") {
		t.Fatalf("got %v, want the node's message", err)
	}
}

func TestNewClientRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "node.example", "ftp://node.example", "http://"} {
		if _, err := farmer.NewClient(u, nil); err == nil {
			t.Errorf("NewClient(%q): got nil, want an error", u)
		}
	}
}

func TestNormalizeNode(t *testing.T) {
	for in, want := range map[string]string{
		"http://n:1":                           "http://n:1",
		"http://n:1/":                          "http://n:1",
		"http://n:1/api/downstream/v1":         "http://n:1",
		"http://n:1/api/downstream/v1/":        "http://n:1",
		"https://n/sluice/":                    "https://n/sluice",
		"https://n/sluice?x=1#frag":            "https://n/sluice",
		" https://n/sluice/api/downstream/v1 ": "https://n/sluice",
	} {
		if got := farmer.NormalizeNode(in); got != want {
			t.Errorf("NormalizeNode(%q): got %q, want %q", in, got, want)
		}
	}
}
