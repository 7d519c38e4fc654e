package http

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// net/http answers a few requests itself, before any handler runs, and it
// answers them in plain text: 431 for headers over MaxHeaderBytes, 400 for
// a request it cannot parse (a malformed Content-Length or Host header, a
// bad request line), 501 for a transfer coding it does not know, 505 for
// an HTTP version it does not speak, and 417 with no body for an Expect
// header other than 100-continue. Clients of both APIs parse every error
// body as JSON, so JSONErrors rewrites those replies, on their way out,
// into the error format of the API the request's path belongs to.
//
// Only the first Write of each reply is looked at: the first since the
// connection opened or since net/http last marked it idle (http.StateIdle,
// once a reply is wholly written). net/http's own replies are always one
// Write, made before any handler runs; body bytes (a stored file served
// under /ipfs/ may hold anything) are never looked at. The first Write of
// a reply is recognised as net/http's by its exact form,
//
//	"HTTP/1.1 " + status + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + text
//
// with no Date header. A handler's reply carries a Date header and lists
// its headers sorted (Connection before Content-Type), so it cannot take
// that form. The 417 goes through the response machinery: it is
// recognised as exactly what net/http writes (Connection, Date, a zero
// Content-Length and nothing else); the node's handlers never answer 417.

// plainErrorHeaders is what net/http writes between the status line and the
// text of the replies it makes itself (net/http/server.go, conn.serve).
const plainErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// expectationFailed is the start of net/http's reply to an Expect header it
// does not support; a Date header and "Content-Length: 0" follow, and
// nothing else.
const expectationFailed = "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: "

// MaxHeaderBytes is the most request headers the public listener reads
// (http.Server.MaxHeaderBytes); more is a 431.
const MaxHeaderBytes = 64 << 10

// requestHead is how much of the start of each request a connection keeps
// to find its path: enough for the request line of every route.
const requestHead = 512

// JSONErrors makes hs answer net/http's own error replies in JSON and
// returns the listener hs must serve: on the public listener (public) in
// the farmer API's format under its prefix and the uploader API's
// elsewhere, with the CORS header every public reply carries; on the
// private one as {"error": ...}, the format of everything it answers. It
// chains a hook onto hs.ConnState; call it before hs.Serve.
func JSONErrors(hs *http.Server, ln net.Listener, public bool) net.Listener {
	prev := hs.ConnState
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		if ec, ok := c.(*errorConn); ok && st == http.StateIdle {
			ec.idle()
		}
		if prev != nil {
			prev(c, st)
		}
	}
	return &errorListener{Listener: ln, public: public}
}

type errorListener struct {
	net.Listener
	public bool
}

func (l *errorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &errorConn{Conn: c, public: l.public}, nil
}

// errorConn keeps the first bytes read since the connection was last idle
// (the start of the request being read) and rewrites net/http's
// plain-text replies. net/http reads a connection from a background
// goroutine while a handler writes to it, hence the lock.
type errorConn struct {
	net.Conn
	public bool

	mu       sync.Mutex
	replying bool // a reply has begun since the connection was last idle
	head     [requestHead]byte
	n        int
}

// idle starts a new request: net/http has written the last reply whole.
// Bytes read before now (a body, or the start of a pipelined request
// net/http read ahead) are dropped; the path of a request whose start was
// read ahead is then unknown.
func (c *errorConn) idle() {
	c.mu.Lock()
	c.replying, c.n = false, 0
	c.mu.Unlock()
}

func (c *errorConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.n < len(c.head) {
			c.n += copy(c.head[c.n:], p[:n])
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *errorConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.replying {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	c.replying = true
	status, text, plain := parsePlainError(p)
	var path string
	if plain {
		path = requestPath(c.head[:c.n])
	}
	c.mu.Unlock()
	if !plain {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(jsonError(status, text, path, c.public)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadFrom keeps the connection's own (sendfile for files under /ipfs/):
// net/http uses it for bodies only, never for its own replies.
func (c *errorConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets net/http half-close the connection after a 431, as it
// does on a plain TCP connection, so the client reads the reply.
func (c *errorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// requestPath is the path of the request line at the start of head, or
// "" when there is none.
func requestPath(head []byte) string {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	_, target, ok := bytes.Cut(bytes.TrimLeft(line, " "), []byte(" "))
	if !ok {
		return ""
	}
	target, _, _ = bytes.Cut(bytes.TrimLeft(target, " "), []byte(" "))
	if i := bytes.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	// An absolute-form target (http://host/path) keeps only its path.
	if i := bytes.Index(target, []byte("://")); i >= 0 {
		rest := target[i+3:]
		j := bytes.IndexByte(rest, '/')
		if j < 0 {
			return "/"
		}
		target = rest[j:]
	}
	return string(target)
}

// parsePlainError tells whether p is one of net/http's own error replies,
// and returns its status ("431 Request Header Fields Too Large") and text.
// It looks no further than p's status line for any other reply.
func parsePlainError(p []byte) (status, text string, ok bool) {
	if isExpectationFailed(p) {
		return "417 Expectation Failed", "Expectation Failed: only Expect: 100-continue is supported", true
	}
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return "", "", false
	}
	i := bytes.IndexByte(rest, '\r')
	if i < 4 || rest[3] != ' ' || !bytes.HasPrefix(rest[i:], []byte(plainErrorHeaders)) {
		return "", "", false
	}
	if _, err := strconv.Atoi(string(rest[:3])); err != nil {
		return "", "", false
	}
	body := rest[i+len(plainErrorHeaders):]
	if bytes.ContainsAny(rest[:i], "\n") || bytes.ContainsAny(body, "\r\n") {
		return "", "", false
	}
	return string(rest[:i]), string(body), true
}

// jsonError is the JSON reply for net/http's reply of status and text to a
// request for path ("" when unknown): the farmer API's format under its
// prefix on the public listener, the uploader API's everywhere else.
func jsonError(status, text, path string, public bool) []byte {
	msg := plainErrorMessage(status, text)
	var body []byte
	if public && isFarmerPath(path) {
		body, _ = json.Marshal(errorBody{Status: "error", Message: msg})
	} else {
		body, _ = json.Marshal(uploaderErrorBody{Error: msg})
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 ")
	b.WriteString(status)
	b.WriteString("\r\n")
	if public {
		b.WriteString("Access-Control-Allow-Origin: *\r\n")
	}
	b.WriteString("Connection: close\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteString("\r\nContent-Type: application/json\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// isExpectationFailed tells whether p is net/http's whole 417 reply: its
// status line, Connection, Date and a zero Content-Length, and no body.
func isExpectationFailed(p []byte) bool {
	rest, ok := bytes.CutPrefix(p, []byte(expectationFailed))
	if !ok {
		return false
	}
	date, ok := bytes.CutSuffix(rest, []byte("\r\nContent-Length: 0\r\n\r\n"))
	return ok && !bytes.ContainsAny(date, "\r\n")
}

// plainErrorMessage is the message of net/http's reply: its text without
// the repeated status code ("400 Bad Request: missing required Host
// header" becomes "Bad Request: missing required Host header").
func plainErrorMessage(status, text string) string {
	if len(text) > 4 && text[:4] == status[:4] {
		return text[4:]
	}
	if text == "" {
		return status[4:]
	}
	return text
}
