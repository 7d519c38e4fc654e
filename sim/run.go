package sim

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	randv2 "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/farmer"
)

// Options are what a caller (the CLI, a test) supplies besides the
// scenario.
type Options struct {
	// Node is the node's base URL (required).
	Node string
	// Progress receives a progress line every ProgressEvery (default and
	// least 1s: the line is written when the series is sampled); nil
	// prints nothing.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Restart kills the node and starts it again (on the same URL and
	// store), returning once the new process runs; Run then waits until
	// GET /readyz answers 200. Required when the scenario has a restart.
	// The caller owns the process; Process.RestartHook makes one.
	Restart func(ctx context.Context) error
	// Chain and PayKeys enable paid uploads when the node's built-in type
	// has a price: each uploader approves the quoted amount from one of
	// PayKeys' accounts (funded with ether and the token) through Chain.
	// Without them, quotes with a price are counted as skipped.
	Chain   ChainBackend
	PayKeys []*ecdsa.PrivateKey
}

// newHTTPClient returns the client every call goes through: one transport
// whose pool holds at most pool connections to the node, all of them kept
// idle between calls (MaxIdleConnsPerHost = MaxConnsPerHost = pool), so
// thousands of virtual clients share a fixed set of connections.
func newHTTPClient(pool int) *http.Client {
	pool = max(pool, 1)
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          pool,
		MaxIdleConnsPerHost:   pool,
		MaxConnsPerHost:       pool,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t, Timeout: 10 * time.Minute}
}

// run is one simulation in progress.
type run struct {
	sc   Scenario
	opt  Options
	node string
	hc   *http.Client
	m    *metrics
	api  *api

	interval atomic.Int64 // ns; 0 until known
	k        atomic.Int64
	// What the node showed: the first contract's due time (≈ its
	// interval) and the k it announced, to check the scenario's hints.
	seenDue, seenK atomic.Int64
	// demand estimates the upload pieces the node offers that no farmer
	// holds yet: honest farmers make room while it is positive.
	demand    atomic.Int64
	demandSig signal // notified when demand grows
	treeBytes atomic.Int64

	restartMu sync.Mutex
	restarts  []RestartWindow

	uploadMu sync.Mutex
	uploads  []*UploadRecord
	notes    []string
	accounts []*account // Options.PayKeys

	// refused counts farmers the node gave no token because of its
	// per-IP token limit: the node is not set up for a simulation.
	refused atomic.Int64
	// quotesLimited counts getQuote calls the node answered 429 (its
	// --quote-rate): uploaders wait them out, but the load is not what
	// the scenario asked for.
	quotesLimited atomic.Int64
}

func (r *run) intervalOr(def time.Duration) time.Duration {
	if v := r.interval.Load(); v > 0 {
		return time.Duration(v)
	}
	return def
}

// learnInterval takes the node's interval from the first contract's due
// time when the scenario gives none.
func (r *run) learnInterval(due time.Duration) {
	if due > 0 {
		r.interval.CompareAndSwap(0, int64(due))
		r.seenDue.CompareAndSwap(0, int64(due))
	}
}

func (r *run) learnK(k int) {
	if k > 0 {
		r.k.CompareAndSwap(0, int64(k))
		r.seenK.CompareAndSwap(0, int64(k))
	}
}

// hintNotes warns when the node does not match the scenario's hints.
func (r *run) hintNotes() []string {
	var out []string
	if hint, due := r.sc.IntervalHint.D(), time.Duration(r.seenDue.Load()); hint > 0 && due > 0 &&
		(due < hint*8/10 || due > hint*12/10) {
		out = append(out, fmt.Sprintf("the node's first contract was due in %s, but interval_hint is %s: start the node with --challenge-interval %s or fix the hint",
			due.Round(time.Millisecond), hint, hint))
	}
	if k, seen := r.sc.LeavesPerChallenge, int(r.seenK.Load()); k > 0 && seen > 0 && k != seen {
		out = append(out, fmt.Sprintf("the node asks %d leaves per challenge, the scenario says %d: the detection theory uses %d", seen, k, k))
	}
	return out
}

// batchWindow is how long ready answers gather.
func (r *run) batchWindow() time.Duration {
	if w := r.sc.BatchWindow.D(); w > 0 {
		return w
	}
	return min(time.Second, r.intervalOr(time.Second)/10)
}

// takeDemand takes one piece off the upload demand, if any is left.
func (r *run) takeDemand() bool {
	for {
		d := r.demand.Load()
		if d <= 0 {
			return false
		}
		if r.demand.CompareAndSwap(d, d-1) {
			return true
		}
	}
}

// addDemand adds upload pieces waiting for farmers and wakes the farmers
// that can take them.
func (r *run) addDemand(n int64) {
	r.demand.Add(n)
	r.demandSig.notify()
}

// signal wakes every goroutine waiting on it, once per notify.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// restartedSince reports whether a restart began after t.
func (r *run) restartedSince(t time.Time) bool {
	r.restartMu.Lock()
	defer r.restartMu.Unlock()
	for _, w := range r.restarts {
		if w.Down.After(t) {
			return true
		}
	}
	return false
}

func (r *run) note(format string, args ...any) {
	r.uploadMu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.uploadMu.Unlock()
}

// Run plays the scenario against the node and returns its report. It
// returns an error only when the simulation cannot run (a bad scenario, no
// node URL, a node that does not answer, a restart without a hook); what
// the simulation finds goes in the report. Cancelling ctx ends the run
// early, with a report of what happened until then.
func Run(ctx context.Context, sc Scenario, opt Options) (*Report, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	sc = sc.withDefaults()
	node := opt.Node
	if node == "" {
		return nil, errors.New("sim: no node URL (Options.Node)")
	}
	node = farmer.NormalizeNode(node)
	if sc.Restart != nil && opt.Restart == nil {
		return nil, errors.New("sim: the scenario restarts the node: Options.Restart is required")
	}
	hc := newHTTPClient(sc.Pool)
	defer hc.CloseIdleConnections()
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = time.Second
	}
	r := &run{sc: sc, opt: opt, node: node, hc: hc}
	r.interval.Store(int64(sc.IntervalHint))
	r.k.Store(int64(sc.LeavesPerChallenge))
	r.api = &api{r: r, base: node}
	for _, k := range opt.PayKeys {
		r.accounts = append(r.accounts, &account{key: k})
	}

	// The node must answer before the clock starts (and the metrics of
	// that wait are dropped).
	r.m = newMetrics(time.Now())
	storage, err := r.api.waitStorage(ctx, 15*time.Second)
	if err != nil {
		return nil, fmt.Errorf("sim: node %s does not answer: %w", node, err)
	}
	start := time.Now()
	r.m = newMetrics(start)

	// Farmers and uploaders.
	stop := make(chan struct{})
	callCtx, cancelCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCalls()
	var farmers []*vfarmer
	for gi, g := range sc.Farmers {
		for range g.Count {
			f, err := newFarmer(r, len(farmers), gi, g, hc)
			if err != nil {
				return nil, err
			}
			farmers = append(farmers, f)
		}
	}
	var uploaders []*vuploader
	for gi, g := range sc.Uploaders {
		for range g.Count {
			uploaders = append(uploaders, newUploader(r, len(uploaders), gi, g, storage))
		}
	}
	var wg sync.WaitGroup
	ramp := sc.Ramp.D()
	order := randv2.New(randv2.NewPCG(sc.Seed, 0)).Perm(len(farmers)) // kinds interleaved over the ramp
	for i, f := range farmers {
		at := start.Add(time.Duration(int64(ramp) * int64(order[i]) / int64(len(farmers))))
		wg.Go(func() { f.run(callCtx, stop, at) })
	}
	for _, u := range uploaders {
		wg.Go(func() { u.run(callCtx, stop) })
	}

	// The clock: samples, progress, the restart, the end.
	end := start.Add(sc.Duration.D())
	var restartC <-chan time.Time
	if sc.Restart != nil {
		t := time.NewTimer(sc.Restart.At.D())
		defer t.Stop()
		restartC = t.C
	}
	var restartDone chan struct{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	nextProgress := start.Add(opt.ProgressEvery)
	cancelled := false
loop:
	for {
		select {
		case <-ctx.Done():
			cancelled = true
			break loop
		case now := <-tick.C:
			s := r.m.sample(now)
			if opt.Progress != nil && !now.Before(nextProgress) {
				fmt.Fprintln(opt.Progress, r.progressLine(s))
				nextProgress = now.Add(opt.ProgressEvery)
			}
			if !now.Before(end) {
				break loop
			}
		case <-restartC:
			restartC = nil
			restartDone = make(chan struct{})
			go func() {
				defer close(restartDone)
				r.restart(ctx)
			}()
		}
	}
	close(stop)
	elapsed := time.Since(start)
	if restartDone != nil {
		<-restartDone // bounded by the hook's context and the readiness wait
	}
	// Calls in flight finish (bounded by their timeout), then the rest are
	// cut.
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(sc.RequestTimeout.D() + 5*time.Second):
		cancelCalls()
		<-waited
	}

	// (The series ends at the last tick: the drain's calls are in the
	// totals only, and the farmers that stopped would chart as gone.)
	rep := r.report(farmers, uploaders, elapsed)
	if cancelled {
		rep.Notes = append(rep.Notes, "cancelled before the end: the ledger was not checked")
		rep.Ledger.Skipped = true
	} else {
		checkCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		// A node that is gone would make every farmer a difference, which
		// reads like lost data: say that the node is gone instead.
		if err := r.api.waitReady(checkCtx, 10*time.Second); err != nil {
			rep.Ledger.Skipped, rep.Ledger.NodeGone = true, err.Error()
			rep.Notes = append(rep.Notes, "the node did not answer at the end of the run ("+err.Error()+"): the ledger was not checked")
		} else {
			rep.Ledger = r.checkLedger(checkCtx, farmers)
		}
		cancel()
	}
	rep.LedgerOK = !rep.Ledger.Skipped && len(rep.Ledger.Differences) == 0
	return rep, nil
}

// RestartWindow is when the node was down: from the call of the restart
// hook until GET /readyz answered 200 again.
type RestartWindow struct {
	Down time.Time `json:"down"`
	Up   time.Time `json:"up"`
	// Err is the hook's or the readiness wait's error, if any.
	Err string `json:"error,omitempty"`
}

// restart calls the hook and waits for the node to be ready again.
func (r *run) restart(ctx context.Context) {
	w := RestartWindow{Down: time.Now()}
	r.restartMu.Lock()
	r.restarts = append(r.restarts, w)
	i := len(r.restarts) - 1
	r.restartMu.Unlock()
	err := r.opt.Restart(ctx)
	if err == nil {
		err = r.api.waitReady(ctx, 60*time.Second)
	}
	w.Up = time.Now()
	if err != nil {
		w.Err = err.Error()
		r.note("restart: %v", err)
	}
	r.restartMu.Lock()
	r.restarts[i] = w
	r.restartMu.Unlock()
}

// progressLine is the live line printed while the run goes on.
func (r *run) progressLine(s Sample) string {
	return fmt.Sprintf("%5.0fs  farmers %d online  contracts %d  %6.0f req/s  p50 %s p99 %s  proofs %d ok %d rejected  expired %d  uploads %d/%d done  errors %d",
		s.T, s.FarmersOnline, s.LiveContracts, s.RPS, fmtMS(s.P50), fmtMS(s.P99),
		r.m.accepted.Load(), r.m.rejected.Load(), r.m.expired.Load(),
		r.m.uploadsDone.Load(), r.m.uploadsStarted.Load(), r.m.failures.Load())
}
