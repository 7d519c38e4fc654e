package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/farmer"
)

// Routes, by the node's route pattern (never by path: paths carry tokens).
const (
	routeStorage   = "GET /"
	routeNew       = "GET /new/{address}"
	routeChunk     = "GET /chunk/{token}/{size}"
	routeChunkData = "GET /chunk/{token}/{file_hash}/data"
	routeChallenge = "POST /challenge/{token}"
	routeAnswer    = "POST /answer/{token}"
	routeStatus    = "GET /status/show/{id}"
	routeReady     = "GET /readyz"
	routeQuote     = "POST /getQuote"
	routeUpload    = "POST /upload"
	routeGetStatus = "GET /getStatus"
	routeGetLink   = "GET /getLink"
	routeIPFS      = "GET /ipfs/{cid}"
	routeApprove   = "chain: ERC-20 approve"
)

// allRoutes fixes the report's route order.
var allRoutes = []string{routeStorage, routeNew, routeChunk, routeChunkData, routeChallenge, routeAnswer,
	routeQuote, routeUpload, routeGetStatus, routeGetLink, routeIPFS, routeApprove, routeStatus, routeReady}

// routeStat is one route's counters; the map of them is built once and
// only read afterwards, so recording takes no lock.
type routeStat struct {
	hist   Histogram
	errors atomic.Int64
}

// metrics is what the run measures while it runs. Everything is atomic or
// locked: farmers, uploaders and the sampler share it.
type metrics struct {
	start  time.Time
	routes map[string]*routeStat
	all    Histogram // every request, for the time series

	requests, failures atomic.Int64

	errMu  sync.Mutex
	errors map[string]int64

	// Live figures for the progress line and the time series.
	live, online                atomic.Int64
	accepted, rejected, expired atomic.Int64
	uploadsStarted, uploadsDone atomic.Int64

	seriesMu sync.Mutex
	series   []Sample
	prev     sampleState
}

type sampleState struct {
	at                 time.Time
	requests, failures int64
	accepted, rejected int64
	hist               *HistSnapshot
}

func newMetrics(start time.Time) *metrics {
	m := &metrics{start: start, routes: map[string]*routeStat{}, errors: map[string]int64{}}
	for _, r := range allRoutes {
		m.routes[r] = &routeStat{}
	}
	m.prev = sampleState{at: start}
	return m
}

// observe records one call: its latency, and its error's kind if it
// failed.
func (m *metrics) observe(route string, took time.Duration, err error) {
	rs := m.routes[route]
	rs.hist.Record(took)
	m.all.Record(took)
	m.requests.Add(1)
	if err != nil {
		rs.errors.Add(1)
		m.failures.Add(1)
		m.addError(errorKind(err))
	}
}

// addError counts one error of a kind.
func (m *metrics) addError(kind string) {
	m.errMu.Lock()
	m.errors[kind]++
	m.errMu.Unlock()
}

// errorKind names an error for the "errors by kind" table: the node's
// status and message, a timeout, or the network failure.
func errorKind(err error) string {
	var ae *farmer.APIError
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("HTTP %d: %s", ae.Status, ae.Message)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "network: connection refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "network: connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "network: connection closed"
	case errors.Is(err, errMalformed) || strings.Contains(err.Error(), "decoding response"):
		return "malformed response"
	case errors.As(err, &ne):
		return "network: other"
	}
	return "other: " + err.Error()
}

// neverSent reports whether a failed request certainly did not reach the
// node's handler: the connection was refused, or the node answered a
// whole-request 4xx. Any other failure may have been applied.
func neverSent(err error) bool {
	var ae *farmer.APIError
	if errors.As(err, &ae) {
		return ae.Status >= 400 && ae.Status < 500
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// errMalformed marks a response that did not decode.
var errMalformed = errors.New("malformed response")

// Sample is one second of the run's time series.
type Sample struct {
	// T is the end of the second, in seconds since the start.
	T float64 `json:"t"`
	// RPS and ErrorsPS are requests and failed requests per second.
	RPS      float64 `json:"rps"`
	ErrorsPS float64 `json:"errors_ps"`
	// Latency percentiles of the requests of this second, in ms.
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	// LiveContracts is the sim's own count of contracts it farms;
	// FarmersOnline the virtual farmers connected and not switched off.
	LiveContracts int64 `json:"live_contracts"`
	FarmersOnline int64 `json:"farmers_online"`
	// Accepted and Rejected proofs during this second.
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
}

// sample appends the series point for the time since the last one.
func (m *metrics) sample(now time.Time) Sample {
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	cur := sampleState{at: now, requests: m.requests.Load(), failures: m.failures.Load(),
		accepted: m.accepted.Load(), rejected: m.rejected.Load(), hist: m.all.Snapshot()}
	secs := now.Sub(m.prev.at).Seconds()
	if secs <= 0 {
		secs = 1
	}
	win := cur.hist.Sub(m.prev.hist)
	s := Sample{
		T:             now.Sub(m.start).Seconds(),
		RPS:           float64(cur.requests-m.prev.requests) / secs,
		ErrorsPS:      float64(cur.failures-m.prev.failures) / secs,
		P50:           ms(win.Quantile(0.50)),
		P95:           ms(win.Quantile(0.95)),
		P99:           ms(win.Quantile(0.99)),
		LiveContracts: m.live.Load(),
		FarmersOnline: m.online.Load(),
		Accepted:      cur.accepted - m.prev.accepted,
		Rejected:      cur.rejected - m.prev.rejected,
	}
	m.series = append(m.series, s)
	m.prev = cur
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
