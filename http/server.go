// Package http serves Sluice's APIs with chi: handlers decode a request,
// send one message to the actors (through the engine), and encode the
// reply. The public farmer API lives under /api/downstream and
// /api/downstream/v1; operations endpoints at the root.
package http

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/microservice"
	"github.com/sluicehq/sluice/proof"
)

// Stable log event names of this package.
const (
	eventRequest       = "http.request"
	eventInternalError = "http.internal_error"
	eventUploadStalled = "http.upload_stalled"
)

// Farmers is what the farmer API needs from the engine.
type Farmers interface {
	Params() proof.Params
	NewToken(ctx context.Context, req actors.TokenRequest) (sluice.RawToken, error)
	Authenticate(ctx context.Context, raw sluice.RawToken) (string, error)
	DeleteToken(ctx context.Context, raw sluice.RawToken) error
	Chunks(ctx context.Context, raw sluice.RawToken, ip string, want int64) ([]sluice.Contract, error)
	Challenge(ctx context.Context, raw sluice.RawToken, h sluice.FileHash) (actors.ChallengeReply, error)
	Challenges(ctx context.Context, raw sluice.RawToken, hashes []sluice.FileHash) ([]actors.ChallengeItem, error)
	// The answer calls say whether the proofs' memory may be reused (see
	// actors.Engine.AnswersReusable): the handlers pool request bodies.
	AnswerReusable(ctx context.Context, raw sluice.RawToken, h sluice.FileHash, proof []byte) (bool, error)
	AnswersReusable(ctx context.Context, raw sluice.RawToken, items []actors.AnswerItem) ([]error, bool, error)
	Status(q actors.StatusQuery) ([]actors.FarmerStatus, error)
	Stats(ctx context.Context, farmer string) (actors.FarmerStatus, error)
}

// Config is the farmer API's settings.
type Config struct {
	// RequireSignature makes /new demand a signed POST.
	RequireSignature bool
	// DefaultChunkSize is what /chunk/{token} asks for (the seed's 32768).
	DefaultChunkSize int64
	// MaxChunkRequest bounds the size one /chunk call may name; larger is
	// refused as absurd (the address limit caps what is handed out anyway).
	MaxChunkRequest int64
	// MaxBody bounds request bodies, after decompression.
	MaxBody int64
	// MaxBatch bounds the items of one batch call.
	MaxBatch int
	// RequestTimeout bounds one request: its context, and the reading of
	// its body (a per-request read deadline; the http.Server needs no
	// ReadTimeout). POST /upload is the exception: it has no overall limit
	// while its body keeps arriving (UploadIdleTimeout), and RequestTimeout
	// counts from the last byte received.
	RequestTimeout time.Duration
	// UploadIdleTimeout is how long an upload's body may send nothing
	// before the request is cut with 408.
	UploadIdleTimeout time.Duration
	// DownloadIdleTimeout bounds each write of a file served under /ipfs/
	// (default 30 s): a download has no overall limit, neither
	// RequestTimeout nor the server's WriteTimeout, while the client keeps
	// taking its bytes; one that takes nothing for this long is cut.
	DownloadIdleTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// VerifySignature checks that signature is the owner of address's
	// signature of message; nil accepts Ethereum addresses only.
	VerifySignature func(address string, kind sluice.AddressKind, message, signature string) error
	// Blobs stores uploaded files; BlobHandler serves them by CID under
	// /ipfs/ (nil: no uploads).
	Blobs       BlobPutter
	BlobHandler http.Handler
}

func (c *Config) defaults() {
	if c.DefaultChunkSize <= 0 {
		c.DefaultChunkSize = 32768
	}
	if c.MaxChunkRequest <= 0 {
		c.MaxChunkRequest = 1 << 40
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 16 << 20
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 10000
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.UploadIdleTimeout <= 0 {
		c.UploadIdleTimeout = 30 * time.Second
	}
	if c.DownloadIdleTimeout <= 0 {
		c.DownloadIdleTimeout = 30 * time.Second
	}
}

// Server is the public HTTP handler. It answers before the engine is
// ready: health says alive, readiness and the APIs say "starting".
type Server struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics.Set
	farmers atomic.Pointer[farmersBox]
	ready   atomic.Bool
	router  http.Handler
}

type farmersBox struct{ Farmers }

// New builds the server; call SetFarmers once the engine has started.
func New(cfg Config, m *metrics.Set, log *zap.Logger) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, log: log, metrics: m}
	r := chi.NewRouter()
	r.Use(s.observe, cors)
	s.uploaderRoutes(r) // GET / is the storage list: a 2xx, as farmers need
	// Health and readiness answer HEAD as GET (net/http drops the body):
	// load balancers probe with either.
	healthz := func(w http.ResponseWriter, r *http.Request) { writeOK(w) }
	readyz := func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Status: "error", Message: "not ready"})
			return
		}
		writeOK(w)
	}
	r.Get("/healthz", healthz)
	r.Head("/healthz", healthz)
	r.Get("/readyz", readyz)
	r.Head("/readyz", readyz)
	r.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	for _, prefix := range []string{"/api/downstream", "/api/downstream/v1"} {
		r.Route(prefix, s.farmerRoutes)
	}
	// Set after the farmer routes, so that their sub-routers take them too.
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeRouteError(w, r, http.StatusNotFound, msgNoRoute)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		allow := allowed(r, req)
		if allow == "" {
			// A method chi does not know (FOO) on a path no route has.
			writeRouteError(w, req, http.StatusNotFound, msgNoRoute)
			return
		}
		w.Header().Set("Allow", allow)
		writeRouteError(w, req, http.StatusMethodNotAllowed, msgNoMethod)
	})
	s.router = stripSlash(r)
	return s
}

// standardMethods are the methods Sluice's routes use, in the order an
// Allow header lists them; every other method is "other" in metrics.
var standardMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// allowed is the Allow header of a 405 from mux: the standard methods a
// route of mux takes on req's path, or "" when none does. (chi hands a
// custom MethodNotAllowed handler no list, so the tree is asked again.)
func allowed(mux chi.Routes, req *http.Request) string {
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	var methods []string
	for _, m := range standardMethods {
		if mux.Match(chi.NewRouteContext(), m, path) {
			methods = append(methods, m)
		}
	}
	return strings.Join(methods, ", ")
}

// methodLabel is r's method as a metrics label: a standard method, or
// "other" for anything a client made up, so that made-up methods cannot
// grow /metrics without bound.
func methodLabel(method string) string {
	for _, m := range standardMethods {
		if method == m {
			return m
		}
	}
	return "other"
}

// Messages of unknown routes and wrong methods.
const (
	msgNoRoute  = "No such route."
	msgNoMethod = "Method not allowed on this route."
)

// farmerPrefix is where the farmer API lives: /api/downstream and
// /api/downstream/v1 (and anything under them).
const farmerPrefix = "/api/downstream"

// isFarmerPath tells whether path belongs to the farmer API.
func isFarmerPath(path string) bool {
	return path == farmerPrefix || strings.HasPrefix(path, farmerPrefix+"/")
}

// writeRouteError answers an unknown route or a wrong method in the format
// of the API the path belongs to: the farmer API's {"status": "error",
// "message"} under its prefix, the uploader API's {"error"} elsewhere (the
// uploader routes and everything else at the root).
func writeRouteError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if isFarmerPath(r.URL.Path) {
		writeJSON(w, code, errorBody{Status: "error", Message: msg})
		return
	}
	writeJSON(w, code, uploaderErrorBody{Error: msg})
}

// Private serves the private listener: microservices register and pull
// uploaded files there. Every error is the uploader API's {"error": ...};
// a registration's success is the real backend's JSON string.
func (s *Server) Private(reg *microservice.Registry) http.Handler {
	r := chi.NewRouter()
	r.Use(s.observe)
	r.Post("/register", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxQuoteBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeJSON(w, http.StatusRequestEntityTooLarge, uploaderErrorBody{Error: sluice.Message(errBodyTooLarge)})
				return
			}
			writeJSON(w, http.StatusBadRequest, uploaderErrorBody{Error: "Invalid input data: the body could not be read."})
			return
		}
		code, reply := reg.Register(r.Context(), body)
		writeJSON(w, code, reply)
	})
	if s.cfg.BlobHandler != nil {
		r.Handle("/ipfs/*", s.cfg.BlobHandler)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, uploaderErrorBody{Error: msgNoRoute})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		allow := allowed(r, req)
		if allow == "" {
			writeJSON(w, http.StatusNotFound, uploaderErrorBody{Error: msgNoRoute})
			return
		}
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, uploaderErrorBody{Error: msgNoMethod})
	})
	return stripSlash(r)
}

// SetFarmers attaches the started engine and marks the node ready.
func (s *Server) SetFarmers(f Farmers) {
	s.farmers.Store(&farmersBox{f})
	s.ready.Store(f != nil)
}

// SetReady flips readiness (off while shutting down).
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// engine returns the engine or answers 503 while the node starts.
func (s *Server) engine(w http.ResponseWriter, r *http.Request) Farmers {
	b := s.farmers.Load()
	if b == nil || b.Farmers == nil {
		s.writeError(w, r, errStarting)
		return nil
	}
	return b.Farmers
}

// statusRecorder keeps the status code for logs and metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// routeOf is the matched route pattern: it never contains a token.
func routeOf(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// observe counts, times and logs every request by route pattern (never by
// path: paths carry farmers' tokens), and bounds it: RequestTimeout for
// its context and for reading its body, except for uploads (streamUpload).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		switch {
		case isUpload(r):
			s.streamUpload(next, rec, r)
		case isDownload(r):
			s.streamDownload(next, rec, r)
		default:
			s.bounded(next, rec, r, start)
		}
		took := time.Since(start)
		// Both labels are bounded: the route is a registered pattern or
		// "unmatched", never the path; the method is a standard one or
		// "other".
		route, method := routeOf(r), methodLabel(r.Method)
		s.metrics.Requests.WithLabelValues(route, method, strconv.Itoa(rec.code)).Inc()
		s.metrics.RequestDuration.WithLabelValues(route, method).Observe(took.Seconds())
		if ce := s.log.Check(zap.DebugLevel, eventRequest); ce != nil {
			ce.Write(zap.String("method", method), zap.String("route", route),
				zap.Int("status", rec.code), zap.Duration("took", took))
		}
	})
}

// bounded serves a request within RequestTimeout from start: its context,
// and the reading of its body, as a server-wide ReadTimeout would. A
// request without a body gets no read deadline: it would only bound
// net/http's read-ahead, whose timeout cancels the connection's context.
// Nor does one on a server whose ReadTimeout already bounds the body
// within RequestTimeout (sluice serve's, see readBounded): every
// deadline set is a change to a runtime timer, on the path of every
// answer. (An unsupported writer, a test recorder, has no connection to
// bound.)
func (s *Server) bounded(next http.Handler, rec *statusRecorder, r *http.Request, start time.Time) {
	ctx, cancel := context.WithDeadline(r.Context(), start.Add(s.cfg.RequestTimeout))
	defer cancel()
	if r.ContentLength != 0 && !s.readBounded(r) {
		_ = http.NewResponseController(rec).SetReadDeadline(start.Add(s.cfg.RequestTimeout))
	}
	next.ServeHTTP(rec, r.WithContext(ctx))
}

// readBounded reports whether the server r came in on bounds the reading
// of every request within RequestTimeout by itself (its ReadTimeout). An
// upload replaces that deadline with its own moving one (streamUpload).
func (s *Server) readBounded(r *http.Request) bool {
	hs, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	return hs != nil && hs.ReadTimeout > 0 && hs.ReadTimeout <= s.cfg.RequestTimeout
}

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
