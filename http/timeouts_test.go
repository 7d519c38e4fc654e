package http_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// Timeouts of the node that timedNode starts: short, so that the slow
// uploads below outlast the request timeout many times over.
const (
	testRequestTimeout = 400 * time.Millisecond
	testUploadIdle     = time.Second
)

// timedNode runs a node on a real listener, with the handler's
// RequestTimeout and UploadIdleTimeout set to the test's values and the
// http.Server's ReadTimeout and WriteTimeout to serverTimeout (0: none;
// sluice serve's ReadTimeout is its request timeout). It returns the
// node's root URL.
func timedNode(t *testing.T, serverTimeout time.Duration) string {
	t.Helper()
	return timedNodeWith(t, testRequestTimeout, serverTimeout)
}

// timedNodeWith is timedNode with a request timeout of its own.
func timedNodeWith(t *testing.T, requestTimeout, serverTimeout time.Duration) string {
	t.Helper()
	return nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{
		HTTP:          sluicehttp.Config{RequestTimeout: requestTimeout, UploadIdleTimeout: testUploadIdle},
		ServerTimeout: serverTimeout,
	}).URL
}

// multipartFile is the body of an upload of one file, and its content type.
func multipartFile(t *testing.T, data []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, err := mw.CreateFormFile("file1", "slow.bin")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// quoteFor asks base for a quote of the built-in type for one file of n
// bytes and returns its id.
func quoteFor(t *testing.T, base string, u *ethUser, n int) string {
	t.Helper()
	q := do(t, "POST", base+"/getQuote", map[string]any{"type": "sluice", "files": []any{map[string]int{"length": n}},
		"duration": 60, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
	if q.code != 201 {
		t.Fatalf("getQuote: %d %s", q.code, q.raw)
	}
	return q.str("quoteId")
}

// halfUpload sends an upload's headers and the first half of body on a
// connection of its own, then nothing more; it returns the connection's
// reader, which gives up 10 s on. The connection closes with the test.
func halfUpload(t *testing.T, base, id, nonce, sig string, body []byte, ctype string) *bufio.Reader {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	target, _ := url.Parse(uploadURL(base, id, nonce, sig))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		target.RequestURI(), target.Host, ctype, len(body))
	conn.Write(body[:len(body)/2])
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return bufio.NewReader(conn)
}

func uploadURL(base, id, nonce, sig string) string {
	return base + "/upload?" + url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {sig}}.Encode()
}

// TestSlowSteadyUpload sends an upload at about 8 KiB/s, in pieces 50 ms
// apart, for about 2.5 s: over twice the request timeout and, on a server
// that has them, five times its ReadTimeout and WriteTimeout, but never
// idle for long. It is taken, not cut with a 5xx. (The request timeout is
// 1 s here, not testRequestTimeout: the work after the body must fit in
// it, and 400 ms was too tight under the race detector on a busy 2-core
// CI machine.)
func TestSlowSteadyUpload(t *testing.T) {
	const requestTimeout = time.Second
	for _, serverTimeout := range []time.Duration{0, 500 * time.Millisecond} {
		t.Run(fmt.Sprintf("server timeouts %s", serverTimeout), func(t *testing.T) {
			testSlowSteadyUpload(t, timedNodeWith(t, requestTimeout, serverTimeout), requestTimeout)
		})
	}
}

func testSlowSteadyUpload(t *testing.T, base string, requestTimeout time.Duration) {
	u := newEthUser()
	data := randomBytes(7, 20<<10)
	id := quoteFor(t, base, u, len(data))
	body, ctype := multipartFile(t, data)

	pr, pw := io.Pipe()
	go func() {
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 400)
			if _, err := pw.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
			time.Sleep(50 * time.Millisecond)
		}
		pw.Close()
	}()
	nonce, sig := u.next(id)
	req, _ := http.NewRequest("POST", uploadURL(base, id, nonce, sig), pr)
	req.Header.Set("Content-Type", ctype)
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	took := time.Since(start)
	if res.StatusCode != 200 || string(raw) != "\"File upload succeeded.\"\n" {
		t.Fatalf("slow upload: got %d %s after %s, want 200 \"File upload succeeded.\"", res.StatusCode, raw, took)
	}
	if took < 2*requestTimeout {
		t.Fatalf("the upload took %s: too fast to test anything", took)
	}
}

// TestStalledUpload sends half an upload and then nothing for longer than
// the idle timeout: the node answers 408 in the uploader's error format
// and closes the connection. Nothing was stored, so the quote takes the
// files on a new signed try.
func TestStalledUpload(t *testing.T) {
	base := timedNode(t, 0)
	u := newEthUser()
	data := randomBytes(8, 4<<10)
	id := quoteFor(t, base, u, len(data))
	body, ctype := multipartFile(t, data)

	nonce, sig := u.next(id)
	br := halfUpload(t, base, id, nonce, sig, body, ctype)
	start := time.Now()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("stalled upload: got %v, want a 408 reply", err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(start)
	var got struct{ Error string }
	if res.StatusCode != http.StatusRequestTimeout || json.Unmarshal(raw, &got) != nil || !strings.HasPrefix(got.Error, "Upload cut: no data received for 1s") ||
		res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("stalled upload: got %d %s %q, want 408 {\"error\": \"Upload cut: ...\"}", res.StatusCode, res.Header.Get("Content-Type"), raw)
	}
	if took < testUploadIdle-100*time.Millisecond || took > testUploadIdle+2*time.Second {
		t.Fatalf("stalled upload cut after %s, want about %s", took, testUploadIdle)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the 408: got %v, want the connection closed (EOF)", err)
	}

	nonce, sig = u.next(id)
	if r := uploadTo(t, base, id, nonce, sig, data); r.code != 200 {
		t.Fatalf("upload after the cut one: got %d %s, want 200", r.code, r.raw)
	}
}

// TestStalledBodyIsBounded: the request timeout bounds every request's
// body but an upload's, whether the server has no ReadTimeout (the
// handler sets the deadline) or one within the request timeout (as sluice
// serve has; the handler then leaves it to net/http): a getQuote whose
// body stops coming is answered or dropped within it, not left hanging.
func TestStalledBodyIsBounded(t *testing.T) {
	for _, server := range []time.Duration{0, testRequestTimeout} {
		t.Run(fmt.Sprintf("ReadTimeout=%s", server), func(t *testing.T) { stalledBodyIsBounded(t, server) })
	}
}

func stalledBodyIsBounded(t *testing.T, serverTimeout time.Duration) {
	base := timedNode(t, serverTimeout)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /getQuote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		res.Body.Close()
		if res.StatusCode < 400 || res.StatusCode >= 500 {
			t.Fatalf("stalled getQuote: got %d, want a 4xx", res.StatusCode)
		}
	}
	if took := time.Since(start); took > testRequestTimeout+2*time.Second {
		t.Fatalf("stalled getQuote answered after %s, want about %s", took, testRequestTimeout)
	}
}

// TestRefusedUploadWithStalledBody: an upload refused before its body is
// read (a bad signature) whose body then stalls is answered at once, and
// the connection is closed after the idle timeout instead of being held
// while net/http drains the body (the server has no ReadTimeout).
func TestRefusedUploadWithStalledBody(t *testing.T) {
	base := timedNode(t, 0)
	u := newEthUser()
	data := randomBytes(9, 4<<10)
	id := quoteFor(t, base, u, len(data))
	body, ctype := multipartFile(t, data)

	nonce, _ := u.next(id)
	br := halfUpload(t, base, id, nonce, "0x1234", body, ctype)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("refused upload: got %v, want a 400 reply", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Fatalf("refused upload: got %d, want 400", res.StatusCode)
	}
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the refusal: got %v, want the connection closed (EOF)", err)
	}
	if took := time.Since(start); took > testUploadIdle+2*time.Second {
		t.Fatalf("connection closed after %s, want about %s", took, testUploadIdle)
	}
}
