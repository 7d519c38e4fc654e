package http_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/metrics"
)

// requestSeries reads the label sets of sluice_http_requests_total from
// base's /metrics: each series as "route|method|code".
func requestSeries(t *testing.T, base string) []string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	re := regexp.MustCompile(`^sluice_http_requests_total\{code="([^"]*)",method="([^"]*)",route="([^"]*)"\}`)
	var out []string
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[3]+"|"+m[2]+"|"+m[1])
		}
	}
	return out
}

// TestMetricsLabelsAreBounded: made-up methods and made-up paths, on the
// public and the private listener, add no label values of their own:
// methods outside the standard set are "other", routes are patterns or
// "unmatched", and a second round of new made-up requests adds no series.
func TestMetricsLabelsAreBounded(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	round := func(k int) {
		for i := range 20 {
			method := fmt.Sprintf("MADEUP%d", k*100+i)
			id := fmt.Sprintf("%032x", k*100+i)
			for _, url := range []string{
				n.URL + "/nowhere/" + id,
				n.URL + "/getQuote",
				n.API + "/heartbeat/" + id,
				n.API + "/nope/" + id,
				n.Private + "/register",
				n.Private + "/" + id,
			} {
				send(t, method, url, "")
				send(t, "GET", url+"/"+id, "")
			}
		}
	}
	requestSeries(t, n.URL) // GET /metrics is counted once served
	round(1)
	first := requestSeries(t, n.URL)
	standard := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
	for _, s := range first {
		parts := strings.Split(s, "|")
		if !slices.Contains(standard, parts[1]) {
			t.Errorf("series %s: method label %q, want a standard method or \"other\"", s, parts[1])
		}
		if route := parts[0]; route != "unmatched" && (strings.Contains(route, "MADEUP") || strings.Contains(route, "0000")) {
			t.Errorf("series %s: route label %q carries the path, want a pattern or \"unmatched\"", s, route)
		}
	}
	if !slices.ContainsFunc(first, func(s string) bool { return strings.Contains(s, "|other|") }) {
		t.Errorf("no series with method \"other\" after made-up methods: %q", first)
	}
	round(2)
	if second := requestSeries(t, n.URL); len(second) != len(first) {
		t.Errorf("a second round of made-up requests grew the series from %d to %d: %q", len(first), len(second), second)
	}
}

// wantJSONReply checks raw is valid UTF-8 and valid JSON.
func wantJSONReply(t *testing.T, what string, raw []byte) {
	t.Helper()
	if !utf8.Valid(raw) || !json.Valid(raw) {
		t.Errorf("%s: reply is not valid UTF-8 JSON: %q", what, raw)
	}
}

// TestBatchBodiesMustBeUTF8: a batch body that is not UTF-8 is not JSON
// text, and is refused with 400 (plain or gzipped), rather than echoed
// into a reply that would not be JSON either. Valid non-ASCII text is
// still echoed, per item.
func TestBatchBodiesMustBeUTF8(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	f := newFarmer(t, n)
	const notUTF8 = "Malformed JSON body: not valid UTF-8."
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.Bytes()
	}
	for _, c := range []struct {
		name, path, body string
	}{
		{"challenge", "/challenge/" + f.token, "{\"hashes\":[\"\xff\xfe\"]}"},
		{"answer", "/answer/" + f.token, "{\"proofs\":[{\"file_hash\":\"\xff\xfe\",\"proof\":{}}]}"},
		{"answer, odd form", "/answer/" + f.token, "{\"proofs\":[{\"file_hash\":\"\xff\",\"proof\":{},\"x\":1}]}"},
		{"single answer", "/answer/" + f.token + "/" + strings.Repeat("ab", 32), "{\"proof\":{\"x\":\"\xff\"}}"},
		{"new", "/new/" + addr, "{\"message\":\"\xff\",\"signature\":\"x\"}"},
	} {
		r := send(t, "POST", n.API+c.path, c.body)
		wantJSONReply(t, c.name, r.raw)
		if c.name == "new" {
			// Without signatures required, /new ignores its body.
			continue
		}
		wantFarmerShape(t, c.name, r, 400, notUTF8)
		wantError(t, do(t, "POST", n.API+c.path, gz(c.body), "Content-Encoding", "gzip"), 400, notUTF8)
	}

	n2 := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{HTTP: sluicehttp.Config{RequireSignature: true}})
	r := send(t, "POST", n2.API+"/new/"+addr, "{\"message\":\"\xff\",\"signature\":\"x\"}")
	wantJSONReply(t, "signed new", r.raw)
	wantFarmerShape(t, "signed new", r, 400, notUTF8)

	for _, path := range []string{"/challenge/" + f.token, "/answer/" + f.token} {
		body := `{"hashes":["é\u00e9"]}`
		if strings.HasPrefix(path, "/answer") {
			body = `{"proofs":[{"file_hash":"é\u00e9","proof":{}}]}`
		}
		r := send(t, "POST", n.API+path, body)
		wantJSONReply(t, path, r.raw)
		if r.code != 200 || !strings.Contains(string(r.raw), `"file_hash":"é\u00e9"`) || !strings.Contains(string(r.raw), sluice.MsgContractNotFound) {
			t.Errorf("POST %s with a UTF-8 hash: got %d %s, want 200 echoing it, contract not found", path, r.code, r.raw)
		}
	}
}

// TestBatchItemsThatAreNotObjects: an item of POST /answer that is not an
// object is an item of the report (no file hash, contract not found), and
// the valid items around it are processed.
func TestBatchItemsThatAreNotObjects(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	f := newFarmer(t, n)
	c := f.chunks(32768)[0]
	body := `{"proofs":[1,"` + c.FileHash + `",null,[],true,{"file_hash":"` + c.FileHash + `","proof":` +
		string(f.prove(c, c.Challenge)) + `},{"proof":{}}]}`
	r := do(t, "POST", f.api+"/answer/"+f.token, body)
	report, _ := r.body["report"].([]any)
	if r.code != 200 || len(report) != 7 {
		t.Fatalf("batch answer with odd items: got %d %s, want 200 and 7 items", r.code, r.raw)
	}
	for i, it := range report {
		item, _ := it.(map[string]any)
		want := map[string]any{"file_hash": nil, "error": sluice.MsgContractNotFound}
		if i == 5 {
			want = map[string]any{"file_hash": c.FileHash, "status": "ok"}
		}
		if fmt.Sprint(item) != fmt.Sprint(want) {
			t.Errorf("report item %d: got %v, want %v", i, item, want)
		}
	}
	if st, err := n.Engine.Stats(t.Context(), sluiceFarmerID(t, f.token)); err != nil || st.Heartbeats != 1 {
		t.Fatalf("stats: %+v %v, want the valid proof counted", st, err)
	}
}

// TestBatchBodiesWithoutTheirList: a batch body must be an object with
// its list; null, [], {} and a null list are refused alike, and an empty
// list is an empty reply.
func TestBatchBodiesWithoutTheirList(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	f := newFarmer(t, n)
	f.chunks(32768) // a live contract, which a bare POST /challenge must not list
	for _, c := range []struct{ path, key, list string }{
		{"/challenge/" + f.token, "hashes", "challenges"},
		{"/answer/" + f.token, "proofs", "report"},
	} {
		for _, body := range []string{`null`, `[]`, `{}`, `{"` + c.key + `":null}`, `7`, `"x"`} {
			r := send(t, "POST", n.API+c.path, body)
			if r.code != 400 {
				t.Errorf("POST %s %s: got %d %s, want 400", c.path, body, r.code, r.raw)
			}
		}
		r := do(t, "POST", n.API+c.path, `{"`+c.key+`":[]}`)
		if items, ok := r.body[c.list].([]any); r.code != 200 || !ok || len(items) != 0 {
			t.Errorf("POST %s with an empty list: got %d %s, want 200 and an empty %q", c.path, r.code, r.raw, c.list)
		}
	}
}

// TestNumbersInPathsArePlainDigits: /chunk's size and /status/list's
// limit and page are decimal digits; a sign or other forms are a 400.
func TestNumbersInPathsArePlainDigits(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	f := newFarmer(t, n)
	for _, p := range []string{"+5", "-0", "+0", "0x10", "5.0", "1e3", "%205", "5%20", "٥"} {
		wantError(t, do(t, "GET", f.api+"/chunk/"+f.token+"/"+p, nil), 400, "")
		wantError(t, do(t, "GET", f.api+"/status/list/"+p, nil), 400, "")
		wantError(t, do(t, "GET", f.api+"/status/list/5/"+p, nil), 400, "")
	}
	if r := do(t, "GET", f.api+"/chunk/"+f.token+"/032768", nil); r.code != 200 {
		t.Errorf("chunk size 032768: got %d %s, want 200", r.code, r.raw)
	}
	if r := do(t, "GET", f.api+"/status/list/05/00", nil); r.code != 200 {
		t.Errorf("status list 05/00: got %d %s, want 200", r.code, r.raw)
	}
}

// TestMethodNotAllowedSaysWhatIs: every 405 carries Allow with the
// methods the route takes, on both listeners; a made-up method on a path
// no route has is a 404; HEAD /healthz and /readyz answer as GET does,
// without a body.
func TestMethodNotAllowedSaysWhatIs(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	tok := strings.Repeat("ab", 16)
	for _, c := range []struct{ method, url, allow string }{
		{"PUT", n.API + "/answer/" + tok, "POST"},
		{"GET", n.API + "/answer/" + tok + "/" + strings.Repeat("cd", 32), "POST"},
		{"PUT", n.API + "/challenge/" + tok, "GET, POST"},
		{"POST", n.URL + "/api/downstream/status/list", "GET"},
		{"DELETE", n.API + "/new/" + addr, "GET, POST"},
		{"POST", n.URL + "/healthz", "GET, HEAD"},
		{"DELETE", n.URL + "/getStatus", "GET, POST"},
		{"GET", n.URL + "/getQuote", "POST"},
		{"MADEUP", n.URL + "/getQuote", "POST"},
		{"GET", n.Private + "/register", "POST"},
		{"MADEUP", n.Private + "/register", "POST"},
	} {
		req, _ := http.NewRequest(c.method, c.url, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 405 || res.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: got %d Allow %q, want 405 Allow %q", c.method, c.url, res.StatusCode, res.Header.Get("Allow"), c.allow)
		}
	}
	wantFarmerShape(t, "MADEUP under the farmer API", send(t, "MADEUP", n.API+"/nope", ""), 404, "No such route.")
	wantUploaderShape(t, "MADEUP at the root", send(t, "MADEUP", n.URL+"/nope", ""), 404, "No such route.")
	wantUploaderShape(t, "MADEUP on the private listener", send(t, "MADEUP", n.Private+"/nope", ""), 404, "No such route.")

	head := func(url string) (int, string, []byte) {
		res, err := http.Head(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), raw
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, ctype, raw := head(n.URL + path); code != 200 || ctype != "application/json" || len(raw) != 0 {
			t.Errorf("HEAD %s: got %d %q %q, want 200 application/json and no body", path, code, ctype, raw)
		}
	}
	// Not ready yet: HEAD /readyz says so as GET does.
	srv := sluicehttp.New(sluicehttp.Config{}, metrics.New(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	if code, _, raw := head(hs.URL + "/readyz"); code != 503 || len(raw) != 0 {
		t.Errorf("HEAD /readyz before ready: got %d %q, want 503 and no body", code, raw)
	}
	if code, _, _ := head(hs.URL + "/healthz"); code != 200 {
		t.Errorf("HEAD /healthz before ready: got %d, want 200", code)
	}
}

// escapeAll percent-encodes every byte of s, as a client that escapes more
// than it must would send it.
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// TestPercentEncodedPathSegments: route parameters are percent-decoded,
// as the original Express servers decode them, so a segment escaped more
// than it must be names the same farmer, token, size or sort key.
func TestPercentEncodedPathSegments(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	r := do(t, "GET", n.API+"/new/"+escapeAll(addr), nil)
	if r.code != 200 || len(r.str("token")) != 32 {
		t.Fatalf("/new with an escaped address: %d %s", r.code, r.raw)
	}
	token := r.str("token")
	r = do(t, "GET", n.API+"/chunk/"+escapeAll(token)+"/"+escapeAll("32768"), nil)
	if r.code != 200 {
		t.Fatalf("/chunk with an escaped token and size: %d %s", r.code, r.raw)
	}
	id := sluiceFarmerID(t, token)
	plain := do(t, "GET", n.API+"/status/show/"+id, nil)
	escaped := do(t, "GET", n.API+"/status/show/"+escapeAll(id), nil)
	if plain.code != 200 || escaped.code != 200 || escaped.str("id") != id {
		t.Fatalf("/status/show: plain %d %s, escaped %d %s", plain.code, plain.raw, escaped.code, escaped.raw)
	}
	if r := do(t, "GET", n.API+"/status/list/by/d/"+escapeAll("uptime")+"/5", nil); r.code != 200 {
		t.Fatalf("/status/list with an escaped sort key: %d %s", r.code, r.raw)
	}
	// Decoded once, not twice: %2561 is "%61", not "a".
	if r := do(t, "GET", n.API+"/new/"+escapeAll(escapeAll(addr)), nil); r.code != 400 {
		t.Fatalf("/new with a twice-escaped address: %d %s, want 400", r.code, r.raw)
	}
	if r := do(t, "GET", n.API+"/status/show/"+escapeAll(escapeAll(id)), nil); r.code == 200 {
		t.Fatalf("/status/show with a twice-escaped id: %d %s, want no farmer", r.code, r.raw)
	}
	// A segment that is not valid escaping is the same 400 as before.
	// (Go's client refuses to send it, so it goes raw.)
	res, body := rawExchange(t, strings.TrimPrefix(n.URL, "http://"), "GET /api/downstream/v1/status/show/%zz HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 400 || !strings.Contains(string(body), `"status":"error"`) {
		t.Fatalf("/status/show/%%zz: %d %s, want a 400 in the farmer API's format", res.StatusCode, body)
	}
}
