package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/persistence/embedded"
	"github.com/sluicehq/sluice/proof"
)

type statusResult struct {
	Farmers        int     `json:"farmers"`
	Requests       int     `json:"requests"`
	AnswersOK      int64   `json:"answers_accepted_during_run"`
	StatusP50Ms    float64 `json:"status_p50_ms"`
	StatusP99Ms    float64 `json:"status_p99_ms"`
	BaselineP50Ms  float64 `json:"baseline_p50_ms"`
	BaselineP99Ms  float64 `json:"baseline_p99_ms"`
	P99Ratio       float64 `json:"p99_ratio"`
	SeedingSeconds float64 `json:"seeding_seconds"`
}

// statusBench measures /status/list/by/d/uptime/25 with many farmers on a
// real listener while another client keeps answering challenges, against
// a handler that returns a fixed 25-row body, interleaved in one run.
func statusBench(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	farmers := fs.Int("farmers", 100_000, "farmer tokens")
	busy := fs.Int("busy-farmers", 500, "farmers holding contracts that are answered during the run")
	requests := fs.Int("requests", 20000, "status requests (and as many baseline requests)")
	fs.Parse(args)

	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sluice-bench-status")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := embedded.Open(dir, zap.NewNop())
	if err != nil {
		return err
	}
	defer store.Close()

	began := time.Now()
	const chunkSize, perFarmer = 4096, 20
	type held struct {
		raw sluice.RawToken
		c   sluice.Contract
	}
	var work []held
	scheme := proof.MerkleSegment(proof.DefaultParams())
	now := time.Now()
	var batch []sluice.Record
	for i := range *farmers {
		var raw sluice.RawToken
		rand.Read(raw[:])
		t := sluice.NewToken(raw, fmt.Sprintf("0x%040x", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
		t.Version = 1
		if i < *busy {
			t.Uptime.Rise(now)
			for j := range perFarmer {
				seed := fmt.Sprintf("%016x%016x", i, j)
				tree, err := proof.BuildTree(proof.NewSeeded(seed, chunkSize), chunkSize, 1024)
				if err != nil {
					return err
				}
				b, _ := io.ReadAll(proof.NewSeeded(seed, chunkSize).NewReader())
				ch := sluice.Chunk{FileHash: sluice.HashBytes(b), Size: chunkSize, Seed: seed, Tag: tree.Tag()}
				var s [32]byte
				rand.Read(s[:])
				c := sluice.NewContract(t.Farmer, ch, scheme, sluice.Terms{Interval: time.Hour}, now, s)
				c.Version = 1
				st, _ := json.Marshal(c)
				batch = append(batch, sluice.Record{Kind: sluice.KindContract, ID: c.ID(), Owner: t.Farmer, Version: 1, Live: true, State: st})
				work = append(work, held{raw, c})
			}
		}
		st, _ := json.Marshal(t)
		batch = append(batch, sluice.Record{Kind: sluice.KindToken, ID: t.Farmer, Version: 1, Live: true, State: st})
		if len(batch) >= 10_000 {
			if err := store.Write(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := store.Write(ctx, batch); err != nil {
		return err
	}

	m := metrics.New()
	w := persistence.NewWriter(store, persistence.WriterOptions{Flushers: 1})
	defer w.Close()
	e, err := actors.Start(ctx, actors.Config{Terms: sluice.Terms{Interval: time.Hour}, StatusRefresh: 2 * time.Second}, store, w, m, zap.NewNop())
	if err != nil {
		return err
	}
	defer e.Stop()
	srv := sluicehttp.New(sluicehttp.Config{}, m, zap.NewNop())
	srv.SetFarmers(e)
	time.Sleep(2500 * time.Millisecond) // one status rebuild with every farmer in it
	res := statusResult{Farmers: *farmers, Requests: *requests, SeedingSeconds: time.Since(began).Seconds()}

	// The baseline serves a fixed body the size of a real 25-row page.
	var page bytes.Buffer
	rows, _ := e.Status(actors.StatusQuery{SortBy: "uptime", Descending: true, Limit: 25})
	json.NewEncoder(&page).Encode(map[string]any{"farmers": rows})
	fixed := page.Bytes()
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("/baseline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(fixed)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	// Background load: answer every held contract's challenge, one by one.
	stop := make(chan struct{})
	var accepted atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, h := range work {
			select {
			case <-stop:
				return
			default:
			}
			data := proof.NewSeeded(h.c.Seed, h.c.Size)
			tree, _ := proof.BuildTree(data, h.c.Size, 1024)
			p, _ := tree.Prove(data, h.c.Challenge)
			body, _ := json.Marshal(map[string]any{"proof": p})
			r, err := client.Post(fmt.Sprintf("%s/api/downstream/v1/answer/%s/%s", base, h.raw, h.c.FileHash), "application/json", bytes.NewReader(body))
			if err == nil {
				if r.StatusCode == 200 {
					accepted.Add(1)
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		}
	}()

	get := func(url string) (time.Duration, error) {
		t0 := time.Now()
		r, err := client.Get(url)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != 200 {
			return 0, fmt.Errorf("%s: %d", url, r.StatusCode)
		}
		return time.Since(t0), nil
	}
	var status, baseline []time.Duration
	for range *requests {
		d, err := get(base + "/api/downstream/v1/status/list/by/d/uptime/25")
		if err != nil {
			return err
		}
		status = append(status, d)
		if d, err = get(base + "/baseline"); err != nil {
			return err
		}
		baseline = append(baseline, d)
	}
	close(stop)
	wg.Wait()
	res.AnswersOK = accepted.Load()
	res.StatusP50Ms, res.StatusP99Ms = pct(status, 50), pct(status, 99)
	res.BaselineP50Ms, res.BaselineP99Ms = pct(baseline, 50), pct(baseline, 99)
	res.P99Ratio = res.StatusP99Ms / res.BaselineP99Ms
	return json.NewEncoder(os.Stdout).Encode(res)
}

func pct(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100]) / float64(time.Millisecond)
}
