// Package http serves Sluice's APIs with chi: handlers decode a request,
// send one message to the actors (through the engine), and encode the
// reply. The public farmer API lives under /api/downstream and
// /api/downstream/v1; operations endpoints at the root.
package http

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/proof"
)

// Stable log event names of this package.
const (
	eventRequest       = "http.request"
	eventInternalError = "http.internal_error"
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
	// RequestTimeout bounds the work of one request.
	RequestTimeout time.Duration
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
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeOK(w)
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Status: "error", Message: "not ready"})
			return
		}
		writeOK(w)
	})
	r.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	for _, prefix := range []string{"/api/downstream", "/api/downstream/v1"} {
		r.Route(prefix, s.farmerRoutes)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Status: "error", Message: "No such route."})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Status: "error", Message: "Method not allowed on this route."})
	})
	s.router = stripSlash(r)
	return s
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
// path: paths carry farmers' tokens).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(rec, r.WithContext(ctx))
		took := time.Since(start)
		route := routeOf(r)
		s.metrics.Requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.code)).Inc()
		s.metrics.RequestDuration.WithLabelValues(route, r.Method).Observe(took.Seconds())
		if ce := s.log.Check(zap.DebugLevel, eventRequest); ce != nil {
			ce.Write(zap.String("method", r.Method), zap.String("route", route),
				zap.Int("status", rec.code), zap.Duration("took", took))
		}
	})
}
