package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/farmer"
)

// fleetResult is the JSON line of one `sluice-bench fleet` run.
type fleetResult struct {
	Store     string `json:"store"`
	Farmers   int    `json:"farmers"`
	Contracts int    `json:"contracts"`
	ChunkSize int64  `json:"chunk_size"`
	Workers   int    `json:"workers"`

	// Filling the node over HTTP: one /new and one /chunk per farmer.
	BuildSeconds    float64 `json:"build_seconds"`
	ContractsPerSec float64 `json:"build_contracts_per_s"`
	LiveContracts   int64   `json:"live_contracts"`

	// The node process's resident set (VmRSS): empty, once filled, and
	// once restarted on the same store (no garbage of the filling). VmRSS
	// counts the pages of files the process maps, and bbolt maps its
	// whole database file, so the anonymous part (RssAnon: heap, stacks)
	// is given too: it is the memory the node itself holds.
	RSSEmptyMiB        float64 `json:"rss_empty_mib"`
	RSSMiB             float64 `json:"rss_mib"`
	AnonMiB            float64 `json:"rss_anon_mib"`
	PeakRSSMiB         float64 `json:"peak_rss_mib"`
	BytesPerContract   float64 `json:"rss_bytes_per_contract"`
	RSSRestartedMiB    float64 `json:"rss_restarted_mib"`
	AnonRestartedMiB   float64 `json:"rss_anon_restarted_mib"`
	BytesPerContractRS float64 `json:"rss_restarted_bytes_per_contract"`
	AnonPerContractRS  float64 `json:"rss_anon_restarted_bytes_per_contract"`

	// SIGKILL to /readyz answering 200 (the engine has loaded every live
	// contract and each contract's actor has armed its deadline), the
	// node's own recovery time, and, as a cross-check, SIGKILL to the
	// node's goroutine count being back at its idle level (every actor's
	// Started message run).
	KillToReadySeconds  float64          `json:"kill_to_ready_seconds"`
	NodeRecoverySeconds float64          `json:"node_recovery_seconds"`
	KillToArmedSeconds  float64          `json:"kill_to_armed_seconds"`
	IdleGoroutines      int              `json:"idle_goroutines"`
	LiveAfterRestart    int64            `json:"live_contracts_after_restart"`
	SampleContracts     int              `json:"sample_contracts"`
	SampleChallenged    int              `json:"sample_with_challenge"`
	SampleFirstAnswerMs float64          `json:"sample_first_answer_ms"`
	NodeWarnings        map[string]int   `json:"node_log_warnings,omitempty"`
	NodeStatus          map[string]int64 `json:"node_non_200,omitempty"`
	LoadAverage         [2]float64       `json:"machine_load_average"` // 1-minute load at the start and the end
	TotalSeconds        float64          `json:"total_seconds"`
}

// fleetBench fills the real node with contracts from virtual farmers over
// HTTP, reads the node's resident memory, kills it with SIGKILL, restarts
// it on the same store, and times how long until it is ready again.
func fleetBench(args []string) error {
	fs := flag.NewFlagSet("fleet", flag.ExitOnError)
	bin := fs.String("sluice", "", "the sluice binary (default: sluice next to this program)")
	dbURL := fs.String("database-url", "", "Postgres URL (a fresh schema is made and dropped); empty: the embedded store")
	farmers := fs.Int("farmers", 100_000, "virtual farmers (one token each)")
	contracts := fs.Int("contracts", 1_000_000, "live contracts in all, spread evenly over the farmers")
	workers := fs.Int("workers", 32, "concurrent virtual farmers while filling")
	chunkSize := fs.Int64("chunk-size", 1024, "prototype chunk size")
	samples := fs.Int("samples", 1000, "farmers whose contracts are checked after the restart")
	interval := fs.Duration("challenge-interval", 2*time.Hour, "the node's challenge interval: longer than the run")
	fs.Parse(args)
	if *contracts%*farmers != 0 {
		return fmt.Errorf("--contracts %d: want a multiple of --farmers %d", *contracts, *farmers)
	}
	per := *contracts / *farmers
	began := time.Now()
	ctx := context.Background()
	bench, err := newNodeSetup(ctx, *bin, *dbURL, "fleet", *interval, *chunkSize)
	if err != nil {
		return err
	}
	defer bench.close()
	res := fleetResult{Store: bench.store(), Farmers: *farmers, Contracts: *contracts, ChunkSize: *chunkSize, Workers: *workers}
	res.LoadAverage[0] = loadAverage()
	node, err := bench.start("node.log", "")
	if err != nil {
		return err
	}
	defer func() { node.stop() }()
	if err := node.waitReady(5 * time.Minute); err != nil {
		return err
	}
	time.Sleep(time.Second)
	res.RSSEmptyMiB, _ = procMiB(node.pid(), "VmRSS")
	anonEmpty, _ := procMiB(node.pid(), "RssAnon")
	m, err := nodeMetrics(node.url())
	if err != nil {
		return err
	}
	res.IdleGoroutines = int(m["go_goroutines"])

	// Fill: each worker takes the next farmer, GET /new, one /chunk for
	// exactly per contracts. Only tokens and hashes are kept.
	hc := benchClient(*workers * 2)
	fc, err := farmer.NewClient(node.url(), hc)
	if err != nil {
		return err
	}
	b := &farmBuilder{fc: fc, workers: *workers}
	tokens := make([]string, *farmers)
	hashes := make([][]sluice.FileHash, *farmers)
	var next, done atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	stopProgress := progress("fleet "+res.Store, &done, int64(*farmers))
	start := time.Now()
	for range *workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= *farmers || failed.Load() != nil {
					return
				}
				f, err := b.farm(ctx, per, *chunkSize)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				tokens[k] = f.token
				hs := make([]sluice.FileHash, len(f.items))
				for j, it := range f.items {
					hs[j] = it.FileHash
				}
				hashes[k] = hs
				done.Add(1)
			}
		})
	}
	wg.Wait()
	stopProgress()
	if p := failed.Load(); p != nil {
		return fmt.Errorf("filling the node: %w (its log: %s)", *p, filepath.Join(bench.dir, "node.log"))
	}
	res.BuildSeconds = time.Since(start).Seconds()
	res.ContractsPerSec = float64(*contracts) / res.BuildSeconds
	time.Sleep(3 * time.Second)
	res.RSSMiB, _ = procMiB(node.pid(), "VmRSS")
	res.AnonMiB, _ = procMiB(node.pid(), "RssAnon")
	res.PeakRSSMiB, _ = procMiB(node.pid(), "VmHWM")
	res.BytesPerContract = (res.RSSMiB - res.RSSEmptyMiB) * (1 << 20) / float64(*contracts)
	if m, err = nodeMetrics(node.url()); err != nil {
		return err
	}
	res.LiveContracts = int64(m["sluice_contracts_live"])
	warnings := node.warnings()

	// SIGKILL, then the same binary on the same store and address.
	killed := time.Now()
	node.kill()
	node, err = bench.start("node2.log", node.addr)
	if err != nil {
		return err
	}
	ready, err := pollReady(node.url(), node.done, 30*time.Minute)
	if err != nil {
		return err
	}
	res.KillToReadySeconds = ready.Sub(killed).Seconds()
	armed, err := waitIdle(node.url(), res.IdleGoroutines+idleSlack, 10*time.Minute)
	if err != nil {
		return err
	}
	res.KillToArmedSeconds = armed.Sub(killed).Seconds()
	if m, err = nodeMetrics(node.url()); err != nil {
		return err
	}
	res.NodeRecoverySeconds = m["sluice_recovery_seconds"]
	res.LiveAfterRestart = int64(m["sluice_contracts_live"])

	// Every sampled contract is live with a challenge and a due time.
	codes := &codeCount{m: map[string]int64{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	t0 := time.Now()
	for i := range min(*samples, *farmers) {
		k := rng.IntN(*farmers)
		items, err := fc.Challenges(ctx, tokens[k], hashes[k])
		if i == 0 {
			res.SampleFirstAnswerMs = float64(time.Since(t0)) / float64(time.Millisecond)
		}
		if err != nil {
			codes.add("challenge: " + err.Error())
			continue
		}
		res.SampleContracts += len(hashes[k])
		for _, it := range items {
			if it.Error == "" && it.Due > 0 && !it.Answered {
				res.SampleChallenged++
			} else if it.Error != "" {
				codes.add("challenge item: " + it.Error)
			}
		}
	}
	time.Sleep(2 * time.Second)
	res.RSSRestartedMiB, _ = procMiB(node.pid(), "VmRSS")
	res.AnonRestartedMiB, _ = procMiB(node.pid(), "RssAnon")
	res.BytesPerContractRS = (res.RSSRestartedMiB - res.RSSEmptyMiB) * (1 << 20) / float64(*contracts)
	res.AnonPerContractRS = (res.AnonRestartedMiB - anonEmpty) * (1 << 20) / float64(*contracts)
	for k, v := range node.warnings() {
		warnings[k] += v
	}
	res.NodeWarnings = warnings
	if len(codes.m) > 0 {
		res.NodeStatus = codes.m
	}
	res.LoadAverage[1] = loadAverage()
	res.TotalSeconds = time.Since(began).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// progress prints done/total to stderr every ten seconds until stopped.
func progress(name string, done *atomic.Int64, total int64) func() {
	stop := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				d := done.Load()
				fmt.Fprintf(os.Stderr, "%s: %d/%d farmers, %.0f/s\n", name, d, total, float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(stop) }
}

// idleSlack is how many goroutines above its idle count a node may run
// and still count as idle: the metrics request itself, the status
// refresh, a flusher at work.
const idleSlack = 16
