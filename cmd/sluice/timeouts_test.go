package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
)

func TestServeTimeoutFlags(t *testing.T) {
	c, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.requestTimeout != 30*time.Second || c.uploadIdle != 30*time.Second {
		t.Fatalf("defaults: got %s and %s, want 30s and 30s", c.requestTimeout, c.uploadIdle)
	}
	t.Setenv("SLUICE_REQUEST_TIMEOUT", "5s")
	t.Setenv("SLUICE_UPLOAD_IDLE_TIMEOUT", "6s")
	c, err = parseServe([]string{"--upload-idle-timeout", "7s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.requestTimeout != 5*time.Second || c.uploadIdle != 7*time.Second {
		t.Fatalf("got %s and %s, want the variable's 5s and the flag's 7s", c.requestTimeout, c.uploadIdle)
	}
	if c.downloadIdle != 30*time.Second {
		t.Fatalf("download idle timeout: got %s, want the default 30s", c.downloadIdle)
	}
	t.Setenv("SLUICE_DOWNLOAD_IDLE_TIMEOUT", "8s")
	if c, err = parseServe(nil, io.Discard); err != nil || c.downloadIdle != 8*time.Second {
		t.Fatalf("download idle timeout: got %s, %v, want the variable's 8s", c.downloadIdle, err)
	}
	_, err = parseServe([]string{"--request-timeout", "1ms", "--upload-idle-timeout", "0s", "--download-idle-timeout", "5ms"}, io.Discard)
	for _, want := range []string{"--request-timeout", "--upload-idle-timeout", "--download-idle-timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got error %v, want one naming %s", err, want)
		}
	}
}

// TestPublicServerReadTimeoutIsTheRequestTimeout: the server bounds every
// request's reading within the request timeout (uploads move their own
// deadline; TestServeSlowUpload), so the handler need not set one.
func TestPublicServerReadTimeoutIsTheRequestTimeout(t *testing.T) {
	hs := publicServer(http.NotFoundHandler(), 7*time.Second)
	if hs.ReadTimeout != 7*time.Second || hs.ReadHeaderTimeout <= 0 {
		t.Fatalf("got ReadTimeout %s, ReadHeaderTimeout %s; want 7s and a bound", hs.ReadTimeout, hs.ReadHeaderTimeout)
	}
}

// TestServeSlowUpload runs the real command with a 300ms request timeout
// and sends an upload that trickles in for about 1.5s: it is taken. The
// private listener answers a wrong method in the uploader's error format.
func TestServeSlowUpload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	private := ln.Addr().String() // free for the node to take
	ln.Close()
	p := startServe(t, nil, "--data-dir", t.TempDir(), "--private-listen", private,
		"--request-timeout", "300ms", "--upload-idle-timeout", "2s")
	base := strings.TrimSuffix(p.api, "/api/downstream/v1")

	key, _ := crypto.GenerateKey()
	user := crypto.PubkeyToAddress(key.PublicKey).Hex()
	data := bytes.Repeat([]byte("slow"), 2048)
	qb, _ := json.Marshal(map[string]any{"type": "sluice", "files": []any{map[string]int{"length": len(data)}},
		"duration": 60, "payment": map[string]any{"chainId": 1}, "userAddress": user})
	res, err := http.Post(base+"/getQuote", "application/json", bytes.NewReader(qb))
	if err != nil {
		t.Fatal(err)
	}
	var q struct{ QuoteID string }
	json.NewDecoder(res.Body).Decode(&q)
	res.Body.Close()
	if res.StatusCode != 201 || q.QuoteID == "" {
		t.Fatalf("getQuote: got %d, want 201 and a quote", res.StatusCode)
	}
	nonce := strconv.FormatInt(time.Now().Unix(), 10)
	sig, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(q.QuoteID, nonce))), key)
	sig[64] += 27

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file1", "slow.txt")
	fw.Write(data)
	mw.Close()
	pr, pw := io.Pipe()
	go func() {
		for rest := body.Bytes(); len(rest) > 0; {
			k := min(len(rest), 600)
			if _, err := pw.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	target := base + "/upload?" + url.Values{"quoteId": {q.QuoteID}, "nonce": {nonce}, "signature": {"0x" + hex.EncodeToString(sig)}}.Encode()
	req, _ := http.NewRequest("POST", target, pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	start := time.Now()
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(raw) != "\"File upload succeeded.\"\n" {
		t.Fatalf("slow upload: got %d %s after %s, want 200", res.StatusCode, raw, time.Since(start))
	}

	res, err = http.Get("http://" + private + "/register")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 405 || string(raw) != `{"error":"Method not allowed on this route."}`+"\n" {
		t.Fatalf("GET /register on the private listener: got %d %s, want 405 {\"error\": ...}", res.StatusCode, raw)
	}

	// net/http's own replies, made before any handler runs, come in each
	// API's JSON format through the listeners the command wraps.
	huge := "X-Big: " + strings.Repeat("a", 80<<10) + "\r\n"
	for _, tc := range []struct{ addr, req, want string }{
		{strings.TrimPrefix(base, "http://"), "GET /api/downstream/v1/status/list/1 HTTP/1.1\r\nHost: x\r\n" + huge + "\r\n",
			`{"status":"error","message":"Request Header Fields Too Large"}`},
		{strings.TrimPrefix(base, "http://"), "POST /getQuote HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
			`{"error":"Bad Request"}`},
		{private, "POST /register HTTP/1.1\r\nHost: x\r\n" + huge + "\r\n",
			`{"error":"Request Header Fields Too Large"}`},
	} {
		c, err := net.DialTimeout("tcp", tc.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, tc.req)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", tc.req, err)
		}
		raw, _ = io.ReadAll(res.Body)
		c.Close()
		if res.Header.Get("Content-Type") != "application/json" || string(raw) != tc.want {
			t.Fatalf("%.40q: got %d %s %s, want %s", tc.req, res.StatusCode, res.Header.Get("Content-Type"), raw, tc.want)
		}
	}
}
