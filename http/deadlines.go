package http

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Uploads and downloads have no overall time limit: their deadlines move
// with the bytes (observe sends them here instead of bounded).

// isUpload tells whether r is POST /upload, whose body may take as long as
// it takes to arrive. (observe runs before routing, after stripSlash.)
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/upload"
}

// streamUpload serves an upload without an overall time limit, so that a
// large file on a slow link is not cut while its bytes keep coming:
//
//   - each read of the body pushes the connection's read deadline to
//     UploadIdleTimeout from then, which also replaces the server-wide
//     ReadTimeout, if any; a body that sends nothing for that long is cut
//     and the client gets 408 (the handler's own error, a consequence of
//     the cut, is dropped) and the connection is closed;
//   - the server-wide write deadline is lifted (the reply is a few bytes,
//     written once the body is read);
//   - the request's context ends RequestTimeout after the last read of
//     the body returned (or after the start, before any read), so the work
//     before and after the body is bounded as for any request, and calls
//     made with it keep their own timeouts.
func (s *Server) streamUpload(next http.Handler, rec *statusRecorder, r *http.Request) {
	rc := http.NewResponseController(rec)
	_ = rc.SetWriteDeadline(time.Time{})
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	quiet := time.AfterFunc(s.cfg.RequestTimeout, func() { cancel(context.DeadlineExceeded) })
	defer quiet.Stop()
	body := &uploadBody{ReadCloser: r.Body, rc: rc, idle: s.cfg.UploadIdleTimeout, quiet: quiet, after: s.cfg.RequestTimeout}
	r2 := r.WithContext(ctx)
	r2.Body = body
	cut := &stallWriter{statusRecorder: rec, body: body}
	next.ServeHTTP(cut, r2)
	if !body.eof {
		// net/http drains some of an unread body to keep the connection:
		// at the idle pace, not forever.
		_ = rc.SetReadDeadline(time.Now().Add(s.cfg.UploadIdleTimeout))
	}
	if !body.stalled || cut.wrote {
		return
	}
	s.log.Info(eventUploadStalled, zap.Duration("idle", s.cfg.UploadIdleTimeout))
	h := rec.Header()
	h.Del("Retry-After")
	h.Set("Connection", "close")
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
	writeJSON(rec, http.StatusRequestTimeout, uploaderErrorBody{Error: "Upload cut: no data received for " +
		s.cfg.UploadIdleTimeout.String() + "; nothing was stored. Ask for a new signature and send the files again."})
}

// isDownload tells whether r fetches a stored file: GET or HEAD under
// /ipfs/, on either listener.
func isDownload(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, "/ipfs/")
}

// downloadChunk is the most one write deadline covers: a large write is
// cut into pieces this big, so that a slow client that keeps reading is
// not cut inside one piece. (At the default 30 s idle timeout, a client
// must take about 270 bytes a second.)
const downloadChunk = 8 << 10

// streamDownload serves a file without an overall time limit, so that a
// large file to a slow client is not cut while its bytes keep going:
//
//   - the server-wide write deadline (WriteTimeout) is lifted, and each
//     write of the reply pushes the connection's write deadline to
//     DownloadIdleTimeout from then; a client that takes nothing for that
//     long loses the connection;
//   - the request's context has no RequestTimeout: it ends when the client
//     goes (opening a file takes no remote call to bound);
//   - once the handler returns, what net/http still holds (the header of
//     a reply without a body, the end of a buffered one) is written under
//     a last deadline idle ahead; net/http lifts it after the reply, and
//     sets the server's WriteTimeout afresh for the connection's next
//     request.
func (s *Server) streamDownload(next http.Handler, rec *statusRecorder, r *http.Request) {
	rc := http.NewResponseController(rec)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		// No connection to manage (a test recorder): serve as is.
		next.ServeHTTP(rec, r)
		return
	}
	idle := s.cfg.DownloadIdleTimeout
	next.ServeHTTP(&deadlineWriter{statusRecorder: rec, rc: rc, idle: idle}, r)
	_ = rc.SetWriteDeadline(time.Now().Add(idle))
}

// deadlineWriter moves the connection's write deadline idle ahead of
// every write, in pieces of at most downloadChunk bytes.
type deadlineWriter struct {
	*statusRecorder
	rc   *http.ResponseController
	idle time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), downloadChunk)
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
		m, err := w.statusRecorder.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.statusRecorder }

// uploadBody is an upload's request body that keeps the connection's read
// deadline UploadIdleTimeout ahead of each read and holds off the
// request's quiet timer while a read is under way. Only the handler's
// goroutine reads it.
type uploadBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	idle    time.Duration
	quiet   *time.Timer   // cancels the request's context
	after   time.Duration // RequestTimeout
	stalled bool          // a read hit the idle deadline
	eof     bool          // the whole body was read
}

func (b *uploadBody) Read(p []byte) (int, error) {
	b.quiet.Stop()
	defer b.quiet.Reset(b.after)
	if err := b.rc.SetReadDeadline(time.Now().Add(b.idle)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		// The whole body is in. net/http now reads ahead on the connection
		// to notice a client that leaves, and a read error there cancels
		// the request's context: lift the deadline, the quiet timer bounds
		// what remains.
		b.eof = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && isTimeout(err):
		b.stalled = true
	}
	return n, err
}

// isTimeout tells whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// stallWriter drops what the handler writes once its body was cut: the
// 408 that streamUpload writes instead says what happened.
type stallWriter struct {
	*statusRecorder
	body  *uploadBody
	wrote bool // the handler's reply went out before any cut
}

func (w *stallWriter) WriteHeader(code int) {
	if w.body.stalled && !w.wrote {
		return
	}
	w.wrote = true
	w.statusRecorder.WriteHeader(code)
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if w.body.stalled && !w.wrote {
		return len(p), nil
	}
	w.wrote = true
	return w.statusRecorder.Write(p)
}

func (w *stallWriter) Unwrap() http.ResponseWriter { return w.statusRecorder }
