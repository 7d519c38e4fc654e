package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/farmer"
	"github.com/sluicehq/sluice/proof"
)

// answerResult is the JSON line of one `sluice-bench answer` run.
type answerResult struct {
	Store          string `json:"store"`
	Workers        int    `json:"workers"`
	ChunkSize      int64  `json:"chunk_size"`
	ProofBodyBytes int    `json:"proof_body_bytes"`

	// (1) single-proof /answer, closed loop, against the trivial handler.
	SingleAnswers    int     `json:"single_answers"`
	SinglePerSec     float64 `json:"single_per_s"`
	SingleBasePerSec float64 `json:"single_baseline_per_s"`
	SingleRatio      float64 `json:"single_ratio"`
	SingleCPUus      float64 `json:"single_node_cpu_us"`
	SingleBaseCPUus  float64 `json:"single_baseline_cpu_us"`
	// Group commit in (1): records per store transaction, on average.
	SingleRowsPerCommit float64 `json:"single_rows_per_commit"`
	SingleRefused       int64   `json:"single_not_accepted"`
	SingleBaseRefused   int64   `json:"single_baseline_failed"`

	// (2) batches of BatchSize proofs per request, against a raw write of
	// as many rows (pgx CopyFrom or one bbolt transaction).
	BatchSize        int       `json:"batch_size"`
	BatchWorkers     int       `json:"batch_workers"`
	BatchProofs      int       `json:"batch_proofs"`
	BatchPerSec      float64   `json:"batch_proofs_per_s"`
	BatchBaseline    string    `json:"batch_baseline"`
	BatchBasePerSec  float64   `json:"batch_baseline_rows_per_s"` // the median of the rounds
	BatchBaseRounds  []float64 `json:"batch_baseline_rounds_rows_per_s"`
	BatchRatio       float64   `json:"batch_ratio"`
	BatchCPUus       float64   `json:"batch_node_cpu_us_per_proof"`
	BatchRefused     int64     `json:"batch_not_accepted"`
	BatchBaseRowSize float64   `json:"batch_baseline_row_bytes"`
	// The raw write's own CPU per row, both sides (this process, and the
	// PostgreSQL backend that ran the COPY), the median of the rounds: a
	// node has to spend at least this and a proof's decode+verify on
	// every proof, which bounds what the machine allows.
	BatchBaseCPUus float64 `json:"batch_baseline_cpu_us_per_row"`

	// (3) open-loop constant rate at half of (1).
	LatencyRate      float64 `json:"latency_rate_per_s"`
	LatencyRequests  int     `json:"latency_requests"`
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	LatencyMaxMs     float64 `json:"latency_max_ms"`
	LatencyRefused   int64   `json:"latency_not_accepted"`
	LatencyBaseP50Ms float64 `json:"latency_baseline_p50_ms"`
	LatencyBaseP99Ms float64 `json:"latency_baseline_p99_ms"`
	// The node's store commits during phase (3), and how many took more
	// than 50 and 250 ms: a tail in them is a tail in the answers waiting
	// on them.
	LatencyCommits         int64 `json:"latency_phase_commits"`
	LatencySlowCommits     int64 `json:"latency_phase_commits_over_50ms"`
	LatencyVerySlowCommits int64 `json:"latency_phase_commits_over_250ms"`

	// The durability check: every acknowledged answer is still answered
	// after a SIGKILL and a restart.
	AcksChecked int `json:"acks_checked"`
	AcksLost    int `json:"acks_lost"`

	// Status codes other than 200 the node sent, and its warn/error log
	// events, over the whole run.
	NodeStatus   map[string]int64 `json:"node_non_200,omitempty"`
	NodeWarnings map[string]int   `json:"node_log_warnings,omitempty"`
	LoadAverage  [2]float64       `json:"machine_load_average"` // 1-minute load at the start and the end
	SetupSeconds float64          `json:"setup_seconds"`
	TotalSeconds float64          `json:"total_seconds"`
}

// answerBench measures the farmer API's answer path on the real binary:
// single-proof answers per second against a trivial handler in a separate
// process served and loaded the same way, proofs per second in batches
// against a raw store write of as many rows, and p99 latency at half the
// single-proof maximum under an open-loop constant rate.
func answerBench(args []string) error {
	fs := flag.NewFlagSet("answer", flag.ExitOnError)
	bin := fs.String("sluice", "", "the sluice binary (default: sluice next to this program)")
	dbURL := fs.String("database-url", "", "Postgres URL (a fresh schema is made and dropped); empty: the embedded store")
	workers := fs.Int("workers", 64, "concurrent requests of the closed-loop phases (1)")
	answers := fs.Int("answers", 30_000, "single-proof answers of phase (1), as many baseline requests")
	rounds := fs.Int("rounds", 3, "phases (1) and (2) alternate node and baseline this many times")
	batchProofs := fs.Int("batch-proofs", 30_000, "proofs of phase (2)")
	batchSize := fs.Int("batch-size", 100, "proofs per request in phase (2)")
	batchWorkers := fs.Int("batch-workers", 8, "concurrent requests of phase (2)")
	latencySecs := fs.Float64("latency-seconds", 10, "length of the constant-rate phase (3)")
	chunkSize := fs.Int64("chunk-size", 32768, "prototype chunk size (the node's smallest default size)")
	perFarmer := fs.Int("contracts-per-farmer", 20, "contracts per virtual farmer in phases (1) and (3)")
	interval := fs.Duration("challenge-interval", 30*time.Minute, "the node's challenge interval: longer than the run, so no challenge is due")
	metricsOut := fs.String("metrics-out", "", "write the node's /metrics here before it is killed")
	latencyOut := fs.String("latency-out", "", "write each phase (3) request's send offset and latency (ms) here")
	fs.Parse(args)
	if *batchProofs%*batchSize != 0 {
		return fmt.Errorf("--batch-proofs %d: want a multiple of --batch-size %d", *batchProofs, *batchSize)
	}
	began := time.Now()
	ctx := context.Background()
	bench, err := newNodeSetup(ctx, *bin, *dbURL, "answer", *interval, *chunkSize)
	if err != nil {
		return err
	}
	defer bench.close()
	dir, schemaURL := bench.dir, bench.schemaURL
	res := answerResult{Store: bench.store(), Workers: *workers, ChunkSize: *chunkSize, BatchSize: *batchSize, BatchWorkers: *batchWorkers}
	res.LoadAverage[0] = loadAverage()
	node, err := bench.start("node.log", "")
	if err != nil {
		return err
	}
	defer func() { node.stop() }()
	if err := node.waitReady(5 * time.Minute); err != nil {
		return err
	}
	base, err := startBaselineServer()
	if err != nil {
		return err
	}
	defer base.stop()

	conns := *workers * 4 // the pool's connections, and the open loop's senders
	hc := benchClient(conns)
	fc, err := farmer.NewClient(node.url(), hc)
	if err != nil {
		return err
	}
	b := &farmBuilder{fc: fc, workers: 16}
	warm(hc, node.url()+"/healthz", base.url+"/healthz", *workers)

	// Contracts for phases (1) and (2) are made before anything is timed;
	// those of (3) once (1) has given its rate.
	setup := time.Now()
	phase("set-up: contracts for phases 1 and 2")
	single, err := b.farms(ctx, ceilDiv(*answers, *perFarmer), *perFarmer, *chunkSize)
	if err != nil {
		return fmt.Errorf("phase 1 contracts: %w", err)
	}
	batched, err := b.farms(ctx, *batchProofs / *batchSize, *batchSize, *chunkSize)
	if err != nil {
		return fmt.Errorf("phase 2 contracts: %w", err)
	}
	singleReqs, err := singleRequests(single, *answers)
	if err != nil {
		return err
	}
	batchReqs, err := batchRequests(batched, *batchSize)
	if err != nil {
		return err
	}
	res.SetupSeconds = time.Since(setup).Seconds()
	res.ProofBodyBytes = len(singleReqs[0].body)
	acked := newAckSet()
	nodeCodes := &codeCount{m: map[string]int64{}}

	// (1) Closed loop: W workers, alternating rounds of baseline and node
	// requests with the same paths and bodies.
	res.SingleAnswers = len(singleReqs)
	var nodeTook, baseTook time.Duration
	var nodeCPU, baseCPU int64
	var rowsIn, commits float64
	for r := range *rounds {
		part := singleReqs[r*len(singleReqs) / *rounds : (r+1)*len(singleReqs) / *rounds]
		phase(fmt.Sprintf("phase 1, round %d: baseline", r+1))
		t0 := cpuTicksOr0(base.pid())
		took, failed := closedLoop(hc, base.url, part, *workers, nil, nil)
		baseCPU += cpuTicksOr0(base.pid()) - t0
		baseTook += took
		res.SingleBaseRefused += failed
		phase(fmt.Sprintf("phase 1, round %d: node", r+1))
		t0 = cpuTicksOr0(node.pid())
		r0, c0, err := batchRows(node.url())
		if err != nil {
			return err
		}
		took, refused := closedLoop(hc, node.url(), part, *workers, acked, nodeCodes)
		nodeCPU += cpuTicksOr0(node.pid()) - t0
		r1, c1, err := batchRows(node.url())
		if err != nil {
			return err
		}
		rowsIn, commits = rowsIn+r1-r0, commits+c1-c0
		nodeTook += took
		res.SingleRefused += refused
	}
	res.SinglePerSec = float64(len(singleReqs)) / nodeTook.Seconds()
	res.SingleBasePerSec = float64(len(singleReqs)) / baseTook.Seconds()
	res.SingleRatio = res.SinglePerSec / res.SingleBasePerSec
	res.SingleCPUus = float64(nodeCPU) * 1e4 / float64(len(singleReqs))
	res.SingleBaseCPUus = float64(baseCPU) * 1e4 / float64(len(singleReqs))
	if commits > 0 {
		res.SingleRowsPerCommit = rowsIn / commits
	}

	// (2) Batches of batchSize proofs, then the raw write of as many rows.
	res.BatchProofs = *batchProofs
	// Like (1), in rounds that alternate node and baseline, so that a
	// slower or faster spell of the machine weighs on both: the node sends
	// its share of the batches, then the baseline writes every row again
	// (into a fresh table or file each time, so its transaction is always
	// as many rows as the whole phase has proofs).
	rows := snapshotRows(batched)
	res.BatchBaseRowSize = rowBytes(rows)
	res.BatchBaseline = "one bbolt transaction putting as many contract rows into a fresh file, fsync'd"
	if schemaURL != "" {
		res.BatchBaseline = "pgx CopyFrom of as many contract rows into an empty copy of the snapshots table"
	}
	var batchTook time.Duration
	var batchCPU int64
	var baseRates, rawCPU []float64
	for r := range *rounds {
		part := batchReqs[r*len(batchReqs) / *rounds : (r+1)*len(batchReqs) / *rounds]
		phase(fmt.Sprintf("phase 2, round %d: batches", r+1))
		t0 := cpuTicksOr0(node.pid())
		took, refused := closedLoop(hc, node.url(), part, *batchWorkers, acked, nodeCodes)
		batchCPU += cpuTicksOr0(node.pid()) - t0
		batchTook += took
		res.BatchRefused += refused
		phase(fmt.Sprintf("phase 2, round %d: baseline", r+1))
		var rate, cpu float64
		if schemaURL != "" {
			rate, cpu, err = copyFromBaseline(ctx, schemaURL, rows)
		} else {
			rate, cpu, err = boltBaseline(filepath.Join(dir, "baseline.db"), rows)
		}
		if err != nil {
			return fmt.Errorf("batch baseline: %w", err)
		}
		baseRates = append(baseRates, rate)
		rawCPU = append(rawCPU, cpu)
	}
	res.BatchCPUus = float64(batchCPU) * 1e4 / float64(*batchProofs)
	res.BatchPerSec = float64(*batchProofs) / batchTook.Seconds()
	res.BatchBaseRounds = baseRates
	res.BatchBasePerSec = median(append([]float64(nil), baseRates...))
	res.BatchRatio = res.BatchPerSec / res.BatchBasePerSec
	res.BatchBaseCPUus = median(rawCPU)

	// (3) Open loop at half the rate of (1): the baseline first at the
	// same rate and with the same bodies, then the node.
	res.LatencyRate = res.SinglePerSec / 2
	n3 := int(math.Ceil(res.LatencyRate * *latencySecs))
	steady, err := b.farms(ctx, ceilDiv(n3, *perFarmer), *perFarmer, *chunkSize)
	if err != nil {
		return fmt.Errorf("phase 3 contracts: %w", err)
	}
	steadyReqs, err := singleRequests(steady, n3)
	if err != nil {
		return err
	}
	res.LatencyRequests = len(steadyReqs)
	time.Sleep(time.Second) // let the set-up's writes drain
	warm(hc, node.url()+"/healthz", base.url+"/healthz", *workers)
	phase("phase 3: baseline at half the rate")
	baseLat, _ := openLoop(hc, base.url, steadyReqs, res.LatencyRate, conns, nil, nil)
	before, err := commitBuckets(node.url())
	if err != nil {
		return err
	}
	phase("phase 3: node at half the rate")
	nodeLat, refused := openLoop(hc, node.url(), steadyReqs, res.LatencyRate, conns, acked, nodeCodes)
	after, err := commitBuckets(node.url())
	if err != nil {
		return err
	}
	res.LatencyCommits = int64(after["+Inf"] - before["+Inf"])
	res.LatencySlowCommits = res.LatencyCommits - int64(after["0.05"]-before["0.05"])
	res.LatencyVerySlowCommits = res.LatencyCommits - int64(after["0.25"]-before["0.25"])
	res.LatencyRefused = refused
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = pct(nodeLat, 50), pct(nodeLat, 99), pct(nodeLat, 100)
	res.LatencyBaseP50Ms, res.LatencyBaseP99Ms = pct(baseLat, 50), pct(baseLat, 99)
	if *latencyOut != "" {
		var b strings.Builder
		for k, d := range nodeLat {
			fmt.Fprintf(&b, "%.3f %.3f\n", float64(k)/res.LatencyRate*1000, float64(d)/float64(time.Millisecond))
		}
		if err := os.WriteFile(*latencyOut, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}

	if *metricsOut != "" {
		if err := saveMetrics(node.url(), *metricsOut); err != nil {
			return err
		}
	}

	// Durability: SIGKILL, restart on the same store, and ask for every
	// acknowledged contract's state.
	phase("durability: SIGKILL, restart, check every acknowledged answer")
	node.kill()
	node, err = bench.start("node2.log", node.addr)
	if err != nil {
		return err
	}
	if err := node.waitReady(5 * time.Minute); err != nil {
		return err
	}
	res.AcksChecked, res.AcksLost, err = checkAcks(ctx, fc, acked)
	if err != nil {
		return fmt.Errorf("check acknowledged answers: %w", err)
	}
	res.NodeStatus = nodeCodes.m
	res.NodeWarnings = node.warnings()
	res.LoadAverage[1] = loadAverage()
	res.TotalSeconds = time.Since(began).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// baselineServe is the trivial handler of the baseline process: it reads
// the body and writes the node's reply to an accepted answer.
func baselineServe(args []string) error {
	fs := flag.NewFlagSet("baseline-server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	// The node's listener settings (cmd/sluice/serve.go).
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	return hs.Serve(ln)
}

// baselineProc is the trivial handler running as its own process, so that
// it is served like the node: another process on a loopback listener.
type baselineProc struct {
	cmd *exec.Cmd
	url string
}

func startBaselineServer() (*baselineProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "baseline-server")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("baseline server: %w", err)
	}
	return &baselineProc{cmd: cmd, url: "http://" + strings.TrimSpace(line)}, nil
}

func (b *baselineProc) pid() int { return b.cmd.Process.Pid }

func (b *baselineProc) stop() {
	b.cmd.Process.Kill()
	b.cmd.Wait()
}

// warm opens the pool's connections to both servers before timing.
func warm(hc *http.Client, a, b string, n int) {
	var wg sync.WaitGroup
	for range n {
		for _, u := range []string{a, b} {
			wg.Go(func() {
				if r, err := hc.Get(u); err == nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
			})
		}
	}
	wg.Wait()
}

// farm is one virtual farmer and the contracts it was handed.
type farm struct {
	token string
	items []farmer.ChunkItem
}

// farmBuilder makes virtual farmers over HTTP: GET /new, then one /chunk
// asking for exactly per contracts. Addresses are never reused.
type farmBuilder struct {
	fc      *farmer.Client
	workers int
	next    atomic.Int64
}

func (b *farmBuilder) farms(ctx context.Context, n, per int, size int64) ([]farm, error) {
	out := make([]farm, n)
	var i atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range b.workers {
		wg.Go(func() {
			for {
				k := int(i.Add(1)) - 1
				if k >= n || failed.Load() != nil {
					return
				}
				f, err := b.farm(ctx, per, size)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				out[k] = f
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return nil, *p
	}
	return out, nil
}

func (b *farmBuilder) farm(ctx context.Context, per int, size int64) (farm, error) {
	addr := fmt.Sprintf("0x%040x", b.next.Add(1))
	tok, err := b.fc.New(ctx, addr, "", "")
	if err != nil {
		return farm{}, err
	}
	items, err := b.fc.Chunks(ctx, tok.Token, int64(per)*size)
	if err != nil {
		return farm{}, err
	}
	if len(items) != per {
		return farm{}, fmt.Errorf("/chunk handed out %d contracts, want %d", len(items), per)
	}
	return farm{token: tok.Token, items: items}, nil
}

// request is one timed POST: its path below the server's URL, its body,
// and the contracts it answers (for the durability check).
type request struct {
	path  string
	body  []byte
	token string
	items []sluice.FileHash
	batch bool // POST /answer/{token}: the reply is a report
}

// prove answers every contract's first challenge from its seeded bytes,
// on all cores.
func prove(farms []farm) ([][]proof.Proof, error) {
	out := make([][]proof.Proof, len(farms))
	var i atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				k := int(i.Add(1)) - 1
				if k >= len(farms) {
					return
				}
				ps := make([]proof.Proof, len(farms[k].items))
				for j, it := range farms[k].items {
					p, err := farmer.ProveReader(proof.NewSeeded(it.Seed, it.Size), it.Tag, it.Challenge)
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					ps[j] = p
				}
				out[k] = ps
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return nil, *p
	}
	return out, nil
}

// singleRequests makes n single-proof answers, POST /answer/{token}/{hash},
// interleaving farmers so that consecutive requests hit different tokens.
func singleRequests(farms []farm, n int) ([]request, error) {
	proofs, err := prove(farms)
	if err != nil {
		return nil, err
	}
	var out []request
	for j := 0; len(out) < n; j++ {
		for k, f := range farms {
			if j >= len(f.items) || len(out) == n {
				continue
			}
			body, _ := json.Marshal(map[string]proof.Proof{"proof": proofs[k][j]})
			h := f.items[j].FileHash
			out = append(out, request{path: farmer.APIPrefix + "/answer/" + f.token + "/" + h.String(),
				body: body, token: f.token, items: []sluice.FileHash{h}})
		}
	}
	return out, nil
}

// batchRequests makes one POST /answer/{token} per farmer with all its
// contracts' proofs.
func batchRequests(farms []farm, size int) ([]request, error) {
	proofs, err := prove(farms)
	if err != nil {
		return nil, err
	}
	out := make([]request, 0, len(farms))
	for k, f := range farms {
		items := make([]farmer.ProofItem, len(f.items))
		hashes := make([]sluice.FileHash, len(f.items))
		for j, it := range f.items {
			items[j] = farmer.ProofItem{FileHash: it.FileHash, Proof: proofs[k][j]}
			hashes[j] = it.FileHash
		}
		body, _ := json.Marshal(map[string]any{"proofs": items})
		out = append(out, request{path: farmer.APIPrefix + "/answer/" + f.token, body: body, token: f.token, items: hashes, batch: true})
	}
	return out, nil
}

// ackSet records the contracts whose answers the node acknowledged.
type ackSet struct {
	mu sync.Mutex
	m  map[string][]sluice.FileHash // token → hashes
	n  int
}

func newAckSet() *ackSet { return &ackSet{m: map[string][]sluice.FileHash{}} }

func (a *ackSet) add(token string, hs ...sluice.FileHash) {
	a.mu.Lock()
	a.m[token] = append(a.m[token], hs...)
	a.n += len(hs)
	a.mu.Unlock()
}

// codeCount counts the node's answers other than 200, and transport errors.
type codeCount struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *codeCount) add(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.m[key]++
	c.mu.Unlock()
}

// send posts one request and reads the answer. For a node (acks not nil)
// it counts what was acknowledged: a 200 for a single answer, each "ok"
// item of a batch report. It returns how many of the request's proofs were
// not accepted (for the baseline: 1 if the request failed).
func send(hc *http.Client, base string, r *request, acks *ackSet, codes *codeCount) int64 {
	resp, err := hc.Post(base+r.path, "application/json", bytes.NewReader(r.body))
	if err != nil {
		codes.add("transport error: " + unwrapErr(err))
		return int64(len(r.items))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		json.Unmarshal(body, &e)
		codes.add(fmt.Sprintf("%d %s", resp.StatusCode, e.Message))
		return int64(len(r.items))
	}
	if acks == nil {
		return 0
	}
	if !r.batch {
		acks.add(r.token, r.items[0])
		return 0
	}
	var rep struct {
		Report []farmer.ReportItem `json:"report"`
	}
	if err := json.Unmarshal(body, &rep); err != nil || len(rep.Report) != len(r.items) {
		codes.add("200 with a malformed report")
		return int64(len(r.items))
	}
	var missed int64
	for i, it := range rep.Report {
		if it.Status == farmer.StatusOK && it.FileHash == r.items[i] {
			acks.add(r.token, it.FileHash)
		} else {
			codes.add("200 item " + it.Error)
			missed++
		}
	}
	return missed
}

func unwrapErr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") {
		return "timeout"
	}
	return err.Error()
}

// closedLoop sends every request from workers goroutines, each sending its
// next request when the previous one is answered; it returns the time the
// whole set took and the proofs not accepted.
func closedLoop(hc *http.Client, base string, reqs []request, workers int, acks *ackSet, codes *codeCount) (time.Duration, int64) {
	var next atomic.Int64
	var missed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(reqs) {
					return
				}
				missed.Add(send(hc, base, &reqs[k], acks, codes))
			}
		})
	}
	wg.Wait()
	return time.Since(start), missed.Load()
}

// openLoop sends the requests at a constant rate whatever the answers do,
// from a fixed set of conns senders, as wrk2 does: each sender takes the
// next request, waits for its scheduled instant if that is still ahead, and
// sends it. A request's latency runs from its scheduled instant, not from
// when a sender was free to send it, so a stalled server is not hidden by
// stalled senders: the requests it held up wait their turn and count the
// wait. The senders never need more than conns connections. A goroutine
// per request, as this used to be, dialled a new connection for every
// request that found all the others busy, so a stall of a few hundred
// milliseconds grew into thousands of connections dialled at once (in one
// run, into the load generator running out of file descriptors): that
// measured a connection storm of the load generator's making, not the
// node.
func openLoop(hc *http.Client, base string, reqs []request, rate float64, conns int, acks *ackSet, codes *codeCount) ([]time.Duration, int64) {
	lat := make([]time.Duration, len(reqs))
	var next, missed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for range conns {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(reqs) {
					return
				}
				at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				missed.Add(send(hc, base, &reqs[k], acks, codes))
				lat[k] = time.Since(at)
			}
		})
	}
	wg.Wait()
	return lat, missed.Load()
}

// snapshotRows makes the rows the node writes when it accepts these
// contracts' answers: contract snapshots with the same ids, owners and
// shape of state.
func snapshotRows(farms []farm) []sluice.Record {
	scheme := proof.MerkleSegment(proof.DefaultParams())
	now := time.Now()
	var rows []sluice.Record
	for _, f := range farms {
		raw, _ := sluice.ParseToken(f.token)
		for _, it := range f.items {
			c := sluice.NewContract(raw.FarmerID(), sluice.Chunk{FileHash: it.FileHash, Size: it.Size, Seed: it.Seed, Tag: it.Tag},
				scheme, sluice.Terms{Interval: 30 * time.Minute}, now, [32]byte(it.FileHash))
			c.Answered, c.Proofs, c.Version = true, 1, 2
			state, _ := json.Marshal(c)
			rows = append(rows, sluice.Record{Kind: sluice.KindContract, ID: c.ID(), Owner: c.Farmer, Version: c.Version, Live: true, State: state})
		}
	}
	return rows
}

func rowBytes(rows []sluice.Record) float64 {
	n := 0
	for _, r := range rows {
		n += len(r.ID) + len(r.Owner) + len(r.State) + 11
	}
	return float64(n) / float64(len(rows))
}

// copyFromBaseline is raw pgx CopyFrom of rows into an empty copy of the
// node's snapshots table: append only, no upsert, no version check. It
// returns rows per second and the CPU microseconds per row of this process
// and of the backend that ran the COPY (PostgreSQL on this machine; 0 for
// the backend's share when its /proc entry cannot be read).
func copyFromBaseline(ctx context.Context, url string, rows []sluice.Record) (float64, float64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS snapshots_copy; CREATE TABLE snapshots_copy (LIKE snapshots INCLUDING ALL)"); err != nil {
		return 0, 0, err
	}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, 0, err
	}
	cols := []string{"kind", "id", "owner", "version", "live", "state"}
	self0, back0 := cpuSeconds(), runNanos(backend)
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"snapshots_copy"}, cols,
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return []any{int16(r.Kind), r.ID, r.Owner, int64(r.Version), r.Live, r.State}, nil
		}))
	took := time.Since(start)
	cpu := cpuSeconds() - self0 + float64(runNanos(backend)-back0)/1e9
	if err != nil || n != int64(len(rows)) {
		return 0, 0, fmt.Errorf("CopyFrom: %d rows, %v", n, err)
	}
	return float64(len(rows)) / took.Seconds(), cpu * 1e6 / float64(len(rows)), nil
}

// runNanos is how long a single-threaded process has run on a CPU, in
// nanoseconds (the first field of /proc/PID/schedstat), or 0.
func runNanos(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n
}

// boltBaseline is the embedded store's twin: one bbolt transaction putting
// rows, encoded as the store encodes them, into a fresh file; the commit
// fsyncs. It returns rows per second and the CPU microseconds per row.
func boltBaseline(path string, rows []sluice.Record) (float64, float64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(path)
	defer db.Close()
	cpu0 := cpuSeconds()
	start := time.Now()
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("snap/contract/live"))
		if err != nil {
			return err
		}
		for _, r := range rows {
			v := []byte{1}
			v = binary.AppendUvarint(v, r.Version)
			v = binary.AppendUvarint(v, uint64(len(r.Owner)))
			v = append(append(v, r.Owner...), r.State...)
			if err := bk.Put([]byte(r.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	took := time.Since(start)
	cpu := cpuSeconds() - cpu0
	if err != nil {
		return 0, 0, err
	}
	return float64(len(rows)) / took.Seconds(), cpu * 1e6 / float64(len(rows)), nil
}

// checkAcks asks the node for the state of every acknowledged contract and
// counts those no longer answered.
func checkAcks(ctx context.Context, fc *farmer.Client, acks *ackSet) (checked, lost int, err error) {
	tokens := make([]string, 0, len(acks.m))
	for t := range acks.m {
		tokens = append(tokens, t)
	}
	sort.Strings(tokens)
	var mu sync.Mutex
	var i atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				k := int(i.Add(1)) - 1
				if k >= len(tokens) || failed.Load() != nil {
					return
				}
				hs := acks.m[tokens[k]]
				items, err := fc.Challenges(ctx, tokens[k], hs)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				l := 0
				for _, it := range items {
					if !it.Answered {
						l++
					}
				}
				mu.Lock()
				checked += len(hs)
				lost += l + len(hs) - len(items)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return checked, lost, *p
	}
	return checked, lost, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// phase says on stderr which phase of the answer benchmark begins.
func phase(what string) {
	fmt.Fprintf(os.Stderr, "%s answer: %s\n", time.Now().Format("15:04:05"), what)
}

// median of xs (not empty); xs is sorted in place.
func median(xs []float64) float64 {
	sort.Float64s(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
