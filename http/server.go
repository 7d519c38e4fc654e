// Package http serves Sluice's APIs with chi: handlers decode a request,
// send one message to the actors (through the engine), and encode the
// reply. The public farmer API lives under /api/downstream and
// /api/downstream/v1; operations endpoints at the root.
package http

import (
	"cmp"
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	// QuoteRate and QuoteBurst limit getQuote calls per client address
	// (IPv6 by /64): QuoteRate a second on average, bursts of QuoteBurst.
	// QuoteRate 0 means no limit.
	QuoteRate  float64
	QuoteBurst int
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
	// quoteLimit limits getQuote per client address (nil: no limit).
	quoteLimit *ipLimiter
}

type farmersBox struct{ Farmers }

// New builds the server; call SetFarmers once the engine has started.
func New(cfg Config, m *metrics.Set, log *zap.Logger) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, log: log, metrics: m, quoteLimit: newIPLimiter(cfg.QuoteRate, cfg.QuoteBurst)}
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
	metricsHandler := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	r.Get("/metrics", metricsHandler.ServeHTTP)
	r.Head("/metrics", metricsHandler.ServeHTTP)
	for _, prefix := range []string{"/api/downstream", "/api/downstream/v1"} {
		r.Route(prefix, s.farmerRoutes)
	}
	// Set after the farmer routes, so that their sub-routers take them too.
	routeErrors(r, writeRouteError)
	s.router = stripSlash(r)
	return s
}

// routeErrors makes mux answer an unknown route with 404 and a wrong
// method with 405 and its Allow header, through write. A method chi does
// not know (FOO) on a path no route has is a 404 too.
func routeErrors(mux chi.Router, write func(w http.ResponseWriter, r *http.Request, code int, msg string)) {
	mux.NotFound(func(w http.ResponseWriter, r *http.Request) {
		write(w, r, http.StatusNotFound, msgNoRoute)
	})
	mux.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		allow := allowed(mux, r)
		if allow == "" {
			write(w, r, http.StatusNotFound, msgNoRoute)
			return
		}
		w.Header().Set("Allow", allow)
		write(w, r, http.StatusMethodNotAllowed, msgNoMethod)
	})
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

// param is the route parameter name, percent-decoded once, as the
// original servers (Flask, Express) decode theirs. chi matches a request
// whose path is escaped more than it must be (/status/show/%61bc) against
// the raw path and hands back the raw segment; otherwise it matched the
// decoded path, and the segment is already decoded.
func param(r *http.Request, name string) string {
	return pathSegment(r, chi.URLParam(r, name))
}

// pathSegment decodes v, a segment of r's routed path, when chi routed on
// the raw path. A segment that does not decode is returned as it is, and
// fails its own validation.
func pathSegment(r *http.Request, v string) string {
	if r.URL.RawPath == "" || !strings.Contains(v, "%") {
		return v
	}
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
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
		body, err := readSmallBody(w, r, maxQuoteBody)
		if err != nil {
			writeJSON(w, farmerStatus(err), uploaderErrorBody{Error: sluice.Message(err)})
			return
		}
		code, reply := reg.Register(r.Context(), body)
		writeJSON(w, code, reply)
	})
	if s.cfg.BlobHandler != nil {
		r.Handle("/ipfs/*", s.cfg.BlobHandler)
	}
	routeErrors(r, func(w http.ResponseWriter, _ *http.Request, code int, msg string) {
		writeJSON(w, code, uploaderErrorBody{Error: msg})
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
	rc := chi.RouteContext(r.Context())
	if rc == nil || len(rc.RoutePatterns) == 0 {
		return "unmatched"
	}
	if len(rc.RoutePatterns) > len(routeKey{}) {
		return cmp.Or(rc.RoutePattern(), "unmatched")
	}
	var k routeKey
	copy(k[:], rc.RoutePatterns)
	routes.mu.RLock()
	p, ok := routes.names[k]
	routes.mu.RUnlock()
	if !ok {
		p = cmp.Or(rc.RoutePattern(), "unmatched")
		routes.mu.Lock()
		routes.names[k] = p
		routes.mu.Unlock()
	}
	return p
}

// routes remembers the pattern chi builds from a route's parts (a join and
// a replace, two allocations, on every request otherwise). The parts are
// registered patterns, so it holds one entry per route.
var routes = struct {
	mu    sync.RWMutex
	names map[routeKey]string
}{names: map[routeKey]string{}}

// routeKey is a route's parts, as chi.Context.RoutePatterns holds them.
type routeKey [4]string

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
	ctx := newRequestCtx(r.Context(), start.Add(s.cfg.RequestTimeout))
	defer ctx.release()
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
