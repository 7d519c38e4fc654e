// Command sluice-bench measures the engine at scale, each run in a fresh
// process so its memory figures are its own:
//
//	sluice-bench engine --contracts 1000000 [--database-url URL | --data-dir DIR]
//
// It writes N live contracts (10 per farmer token) straight into a store,
// starts the actor engine on it, and prints one JSON line: how long the
// start-up took to load and re-arm every contract, and the resident memory
// per live contract. make bench runs it at 100k and 1M.
//
//	sluice-bench status --farmers 100000
//
// measures the status list's latency under answer load (see status.go).
//
//	sluice-bench answer [--sluice BIN] [--database-url URL]
//
// runs the real node binary and measures its answer path: single-proof
// answers per second, proofs per second in batches, and latency at half
// the maximum rate, each next to its baseline (see answer.go).
//
//	sluice-bench fleet [--sluice BIN] [--database-url URL] --contracts 1000000 --farmers 100000
//
// fills the real node with live contracts over HTTP, reads its resident
// memory, kills it with SIGKILL and times the restart (see fleet.go).
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/persistence/embedded"
	"github.com/sluicehq/sluice/persistence/postgres"
	"github.com/sluicehq/sluice/proof"
)

var memProfile, cpuProfile string

type result struct {
	Store            string  `json:"store"`
	Contracts        int     `json:"contracts"`
	Tokens           int     `json:"tokens"`
	SeedSeconds      float64 `json:"seed_seconds"`
	RearmSeconds     float64 `json:"rearm_seconds"`
	RSSBaseMiB       float64 `json:"rss_base_mib"`
	RSSMiB           float64 `json:"rss_mib"`
	HeapMiB          float64 `json:"heap_mib"`
	BytesPerContract float64 `json:"rss_bytes_per_contract"`
	Goroutines       int     `json:"goroutines"`
}

func main() {
	subcommands := map[string]func([]string) error{
		"uploads":         uploadsBench,
		"answer":          answerBench,
		"fleet":           fleetBench,
		"baseline-server": baselineServe,
	}
	if len(os.Args) >= 2 && subcommands[os.Args[1]] != nil {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sig
			runExits()
			os.Exit(1)
		}()
		if err := subcommands[os.Args[1]](os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sluice-bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "status" {
		if err := statusBench(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sluice-bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "engine" {
		fmt.Fprintln(os.Stderr, "usage: sluice-bench engine --contracts N [--database-url URL | --data-dir DIR]\n"+
			"       sluice-bench status [--farmers N]\n       sluice-bench uploads\n"+
			"       sluice-bench answer [--sluice BIN] [--database-url URL]\n"+
			"       sluice-bench fleet [--sluice BIN] [--database-url URL] [--farmers N] [--contracts N]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("engine", flag.ExitOnError)
	n := fs.Int("contracts", 100_000, "live contracts to load")
	dbURL := fs.String("database-url", "", "Postgres URL (a fresh schema is made and dropped)")
	dir := fs.String("data-dir", "", "embedded store directory (default: a temporary one)")
	memprofile := fs.String("memprofile", "", "write a heap profile here once the engine is up")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the start-up here")
	fs.Parse(os.Args[2:])
	memProfile, cpuProfile = *memprofile, *cpuprofile
	if err := run(*n, *dbURL, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(1)
	}
}

func run(n int, dbURL, dir string) error {
	ctx := context.Background()
	log := zap.NewNop()
	var store actors.Store
	name := "embedded"
	if dbURL != "" {
		name = "postgres"
		schemaURL, drop, err := freshSchema(ctx, dbURL)
		if err != nil {
			return err
		}
		defer drop()
		s, err := postgres.Open(ctx, schemaURL, log)
		if err != nil {
			return err
		}
		store = s
	} else {
		if dir == "" {
			d, err := os.MkdirTemp("", "sluice-bench")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d)
			dir = d
		}
		s, err := embedded.Open(dir, log)
		if err != nil {
			return err
		}
		store = s
	}
	defer store.Close()

	began := time.Now()
	tokens, err := seed(ctx, store, n)
	if err != nil {
		return err
	}
	res := result{Store: name, Contracts: n, Tokens: tokens, SeedSeconds: time.Since(began).Seconds()}

	settle()
	res.RSSBaseMiB = rssMiB()
	w := persistence.NewWriter(store, persistence.WriterOptions{})
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
	}
	began = time.Now()
	e, err := actors.Start(ctx, actors.Config{Terms: sluice.Terms{Interval: time.Hour, Challenges: 256}}, store, w, metrics.New(), log)
	if err != nil {
		return err
	}
	res.RearmSeconds = time.Since(began).Seconds()
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	settle()
	res.RSSMiB = rssMiB()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapMiB = float64(ms.HeapAlloc) / (1 << 20)
	res.BytesPerContract = (res.RSSMiB - res.RSSBaseMiB) * (1 << 20) / float64(n)
	res.Goroutines = runtime.NumGoroutine()
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	e.Stop()
	w.Close()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// seed writes n live contracts, 10 per token, as the engine would have
// committed them. Tags are those of a 32 KiB chunk; the bytes are never
// needed because nothing is proven here.
func seed(ctx context.Context, store actors.Store, n int) (int, error) {
	scheme := proof.MerkleSegment(proof.DefaultParams())
	terms := sluice.Terms{Interval: time.Hour, Challenges: 256}
	now := time.Now()
	var batch []sluice.Record
	flush := func() error {
		err := store.Write(ctx, batch)
		batch = batch[:0]
		return err
	}
	tokens := 0
	var tok sluice.Token
	for i := range n {
		if i%10 == 0 {
			var raw sluice.RawToken
			rand.Read(raw[:])
			tok = sluice.NewToken(raw, fmt.Sprintf("0x%040x", tokens), "192.0.2.1", now)
			tok.Version = 1
			b, _ := json.Marshal(tok)
			batch = append(batch, sluice.Record{Kind: sluice.KindToken, ID: tok.Farmer, Version: 1, Live: true, State: b})
			tokens++
		}
		var ch sluice.Chunk
		rand.Read(ch.FileHash[:])
		rand.Read(ch.Tag.Root[:])
		ch.Size, ch.Tag.Size, ch.Tag.LeafSize = 32768, 32768, 1024
		ch.Seed = fmt.Sprintf("%032x", i)
		var s [32]byte
		rand.Read(s[:])
		c := sluice.NewContract(tok.Farmer, ch, scheme, terms, now, s)
		c.Version = 1
		b, _ := json.Marshal(c)
		batch = append(batch, sluice.Record{Kind: sluice.KindContract, ID: c.ID(), Owner: c.Farmer, Version: 1, Live: true, State: b})
		if len(batch) >= 10_000 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	return tokens, flush()
}

func settle() {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(200 * time.Millisecond)
}

// rssMiB reads the process's resident set from /proc.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// freshSchema makes a schema for this run and returns a URL using it.
func freshSchema(ctx context.Context, url string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", nil, err
	}
	var b [6]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("sluice_bench_%x", b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	drop := func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema, drop, nil
}
