// Package metrics holds the Prometheus collectors Sluice exports on
// /metrics. One Set is built per node (tests build several) and handed to
// the layers that count things; none of them registers collectors itself.
//
// No label carries a token, a farmer id or a contract: those would make
// millions of series. Labels are routes, outcomes and states.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Set is every collector of one node.
type Set struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // by route, method, code
	RequestDuration *prometheus.HistogramVec // by route, method
	LiveContracts   prometheus.Gauge
	LiveTokens      prometheus.Gauge
	Proofs          *prometheus.CounterVec // by result: accepted, invalid, corrupted, late, repeated
	ContractsClosed *prometheus.CounterVec // by state: expired, ended, cancelled
	Displaced       prometheus.Counter     // prototype contracts ended early for uploaded data
	SnapshotBatch   prometheus.Histogram   // rows per committed batch
	SnapshotCommit  prometheus.Histogram   // seconds per batch commit
	SnapshotErrors  prometheus.Counter
	RecoverySeconds prometheus.Gauge
	ArchivePurged   prometheus.Counter // archived contract records deleted after the retention period
}

// New builds a Set on a fresh registry, with the Go runtime and process
// collectors included.
func New() *Set {
	reg := prometheus.NewRegistry()
	s := &Set{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_requests_total", Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		LiveContracts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_contracts_live", Help: "Contracts currently live on this node.",
		}),
		LiveTokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_tokens_live", Help: "Farmer tokens currently live on this node.",
		}),
		Proofs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proofs_total", Help: "Proofs received, by result (accepted, invalid, corrupted, expired, repeated).",
		}, []string{"result"}),
		ContractsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_contracts_closed_total", Help: "Contracts that stopped being live, by final state.",
		}, []string{"state"}),
		Displaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_contracts_displaced_total", Help: "Prototype contracts ended early to make room for pieces of uploads.",
		}),
		SnapshotBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_snapshot_batch_rows", Help: "Snapshot records per committed batch (group commit size).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		SnapshotCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_snapshot_commit_seconds", Help: "Time to commit one snapshot batch.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		SnapshotErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_snapshot_errors_total", Help: "Snapshot batches that failed to commit.",
		}),
		RecoverySeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_recovery_seconds", Help: "Time the last start-up took to load and re-arm every live entity.",
		}),
		ArchivePurged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_archived_contracts_purged_total", Help: "Archived contract records deleted once older than the archive retention.",
		}),
	}
	reg.MustRegister(s.Requests, s.RequestDuration, s.LiveContracts, s.LiveTokens, s.Proofs,
		s.ContractsClosed, s.Displaced, s.SnapshotBatch, s.SnapshotCommit, s.SnapshotErrors, s.RecoverySeconds,
		s.ArchivePurged,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// ObserveBatch records one snapshot batch; it fits persistence.WriterOptions.Observe.
func (s *Set) ObserveBatch(rows int, took time.Duration, err error) {
	if err != nil {
		s.SnapshotErrors.Inc()
		return
	}
	s.SnapshotBatch.Observe(float64(rows))
	s.SnapshotCommit.Observe(took.Seconds())
}

// Value reads the current value of a counter or gauge (for tests and the
// simulator's report).
func Value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}
