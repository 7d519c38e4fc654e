package http_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/blobstore"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/metrics"
)

// blobNode serves files under /ipfs/ on a real listener whose
// http.Server has writeTimeout as its WriteTimeout (0: none), with the
// handler's DownloadIdleTimeout set to idle. It stores each of files and
// returns the listener's address and the files' CIDs.
func blobNode(t *testing.T, writeTimeout, idle time.Duration, files ...[]byte) (string, []string) {
	t.Helper()
	bs, err := blobstore.Open(t.TempDir())
	if err != nil {
		t.Fatalf("open blob store: %v", err)
	}
	var cids []string
	for _, f := range files {
		c, _, err := bs.Put(context.Background(), bytes.NewReader(f), int64(len(f)))
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		cids = append(cids, c.String())
	}
	srv := sluicehttp.New(sluicehttp.Config{BlobHandler: bs.Handler("/ipfs/"), DownloadIdleTimeout: idle},
		metrics.New(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: time.Second, WriteTimeout: writeTimeout}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		bs.Close()
	})
	return ln.Addr().String(), cids
}

// slowConn dials addr with a small receive buffer, so that the server
// soon waits on the client's reading, and sends GET path.
func slowConn(t *testing.T, addr, path string) (net.Conn, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(256 << 10)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: got %d, want 200", path, res.StatusCode)
	}
	return conn, res
}

// TestSlowDownloadOutlastsWriteTimeout reads a 12 MiB file at a few MB/s,
// so that the server is still writing long after its WriteTimeout: the
// whole file arrives, since a download's write deadline moves with each
// write instead.
func TestSlowDownloadOutlastsWriteTimeout(t *testing.T) {
	const writeTimeout = 400 * time.Millisecond

	data := randomBytes(11, 12<<20)
	addr, cids := blobNode(t, writeTimeout, 0, data)
	_, res := slowConn(t, addr, "/ipfs/"+cids[0])
	start := time.Now()
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		k, err := io.ReadFull(res.Body, buf)
		got.Write(buf[:k])
		if err == io.EOF || err == io.ErrUnexpectedEOF && got.Len() == len(data) {
			break
		}
		if err != nil {
			t.Fatalf("slow download: got %v after %d of %d bytes in %s, want the whole file", err, got.Len(), len(data), time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("slow download: got %d bytes, want the %d stored", got.Len(), len(data))
	}
	if took := time.Since(start); took < 2*writeTimeout {
		t.Fatalf("the download took %s: too fast to test anything", took)
	}
}

// TestStalledDownloadIsCut: a client that stops taking a file's bytes
// loses the connection after the idle timeout, not never (the server has
// no WriteTimeout here).
func TestStalledDownloadIsCut(t *testing.T) {
	const idle = 300 * time.Millisecond
	data := randomBytes(12, 12<<20)
	addr, cids := blobNode(t, 0, idle, data)
	_, res := slowConn(t, addr, "/ipfs/"+cids[0])
	time.Sleep(idle + time.Second)
	n, err := io.Copy(io.Discard, res.Body)
	if err == nil || n >= int64(len(data)) {
		t.Fatalf("stalled download: got %d of %d bytes and %v, want it cut short", n, len(data), err)
	}
}

// TestDownloadLeavesNoDeadline: after a download on a kept-alive
// connection of a server without WriteTimeout, a later request on it is
// answered even once the download's idle timeout has passed: the last
// write deadline a download sets does not linger (net/http lifts it
// after each reply; this test keeps streamDownload relying on that).
func TestDownloadLeavesNoDeadline(t *testing.T) {
	const idle = 200 * time.Millisecond
	data := randomBytes(13, 1<<10)
	addr, cids := blobNode(t, 0, idle, data)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	get := func(path string) (int, []byte) {
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("GET %s: body: %v", path, err)
		}
		return res.StatusCode, raw
	}
	if code, raw := get("/ipfs/" + cids[0]); code != 200 || !bytes.Equal(raw, data) {
		t.Fatalf("download: got %d and %d bytes, want 200 and %d", code, len(raw), len(data))
	}
	time.Sleep(idle + 300*time.Millisecond)
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("GET /healthz on the same connection: got %d, want 200", code)
	}
}
