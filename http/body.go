package http

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/sluicehq/sluice"
)

// decodeBody reads a JSON request body into v, within limit bytes (after
// decompression). A body labelled Content-Encoding: gzip is gunzipped only
// when it really is gzip: the original farmer labels plain JSON that way.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	return decodeFrom(bodyReader(w, r, limit), v)
}

// bodyReader is the request body within limit bytes, gunzipped when it
// really is gzip.
func bodyReader(w http.ResponseWriter, r *http.Request, limit int64) io.Reader {
	body := io.Reader(maxBody(w, r, limit))
	// Content codings are case-insensitive (RFC 9110, section 8.4.1).
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		br := bufio.NewReader(body)
		if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(br)
			if err != nil {
				return errReader{sluice.Errorf(sluice.ErrInvalid, "Malformed gzip body.")}
			}
			body = &limitedReader{r: zr, left: limit}
		} else {
			body = br
		}
	}
	return body
}

// maxBody is r.Body within limit bytes, as http.MaxBytesReader makes it,
// except that a body whose Content-Length already says it is larger fails
// at once: reading it first would hold the connection for the whole read
// timeout, and invite a client that sent Expect: 100-continue to send it
// all. (A gzip body is limited as sent, here, and again once inflated.)
func maxBody(w http.ResponseWriter, r *http.Request, limit int64) io.ReadCloser {
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		return io.NopCloser(errReader{&http.MaxBytesError{Limit: limit}})
	}
	return http.MaxBytesReader(w, r.Body, limit)
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeFrom decodes one JSON object from body into v; trailing data is a
// malformed body too.
func decodeFrom(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || errors.Is(err, errTooLarge) {
			return errBodyTooLarge
		}
		return sluice.Errorf(sluice.ErrInvalid, "Malformed JSON body: unexpected data after the object.")
	}
	return nil
}

// presize is the most a body's buffer is sized to from its Content-Length
// before any of it arrives.
const presize = 1 << 20

// sizeHint is the size to give a body's buffer before reading it: its
// Content-Length, so that a 600 KB batch is not copied several times over
// while the buffer doubles, but not past presize: the header is the
// client's word, and memory for a body that never comes would be held for
// the whole read timeout.
func sizeHint(r *http.Request, limit int64) int {
	n := r.ContentLength
	if n <= 0 || n > limit || r.Header.Get("Content-Encoding") != "" {
		return 0
	}
	return int(min(n, presize)) + bytes.MinRead
}

// bodyPool keeps the body buffers of the answer routes, the node's busiest
// (a single answer is a 6.5 KB body), for reuse once nothing reads them.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// pooledBody is a request body read into a buffer from bodyPool.
type pooledBody struct {
	buf *bytes.Buffer
	// kept is set when something may still read the bytes (an actor the
	// wait for was cut short): release then leaves the buffer to the
	// garbage collector.
	kept bool
}

// readPooledBody reads the whole body within limit, as decodeBody would,
// into a buffer from bodyPool. Call release once nothing refers to its
// bytes any more.
func readPooledBody(w http.ResponseWriter, r *http.Request, limit int64) (*pooledBody, error) {
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	buf.Grow(sizeHint(r, limit))
	if _, err := buf.ReadFrom(bodyReader(w, r, limit)); err != nil {
		recycle(buf)
		return nil, bodyError(err)
	}
	return &pooledBody{buf: buf}, nil
}

func (b *pooledBody) bytes() []byte { return b.buf.Bytes() }

// release returns the buffer to the pool unless it is kept.
func (b *pooledBody) release() {
	if !b.kept {
		recycle(b.buf)
	}
}

// recycle returns a body buffer to the pool, unless it grew past presize
// (a big batch): the pool would keep that memory for the odd big body.
func recycle(buf *bytes.Buffer) {
	if buf.Cap() <= presize+bytes.MinRead {
		bodyPool.Put(buf)
	}
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	var se *sluice.Error
	switch {
	case errors.As(err, &se):
		return err // already an answer (a malformed gzip body)
	case errors.As(err, &tooBig), errors.Is(err, errTooLarge):
		return errBodyTooLarge
	case errors.Is(err, io.EOF):
		return sluice.Errorf(sluice.ErrInvalid, "Malformed JSON body: the body is empty.")
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return sluice.Errorf(sluice.ErrInvalid, "Malformed JSON body: %q has the wrong type (got %s).", typeErr.Field, typeErr.Value)
	}
	return sluice.Errorf(sluice.ErrInvalid, "Malformed JSON body.")
}

// limitedReader fails once more than left bytes were read (a gzip bomb).
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
