package embedded_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/persistence/embedded"
	"github.com/sluicehq/sluice/persistence/storetest"
)

// benchRows is how many records each benchmark iteration writes (the same
// as the Postgres benchmarks).
const benchRows = 100_000

// benchRecords makes n contract records with ~200 bytes of state, ids
// spread like hashes.
func benchRecords(n int) []sluice.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]sluice.Record, n)
	for i := range recs {
		state := make([]byte, 200)
		for j := range state {
			state[j] = byte(rng.Uint32())
		}
		recs[i] = sluice.Record{
			Kind:    sluice.KindContract,
			ID:      fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
			Owner:   fmt.Sprintf("farmer-%04d", rng.IntN(5000)),
			Version: 1,
			Live:    true,
			State:   state,
		}
	}
	return recs
}

// freshStore opens a store in a new directory; the timer is stopped.
func freshStore(b *testing.B) *embedded.Store {
	s, err := embedded.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkSnapshotWriter is the embedded twin of the Postgres benchmark:
// benchRows fresh records through a persistence.Writer from 256 callers,
// each committing perCommit records at a time and waiting for each commit.
func BenchmarkSnapshotWriter(b *testing.B) {
	recs := benchRecords(benchRows)
	for _, perCommit := range []int{1, 100} {
		for _, flushers := range []int{1, 2} {
			b.Run(fmt.Sprintf("callers=256/per_commit=%d/flushers=%d", perCommit, flushers), func(b *testing.B) {
				var took time.Duration
				var batches, rows int
				var mu sync.Mutex
				opt := persistence.WriterOptions{
					Flushers: flushers,
					Observe: func(_ int, _ time.Duration, err error) {
						if err != nil {
							b.Error(err)
						}
						mu.Lock()
						batches++
						mu.Unlock()
					},
				}
				b.StopTimer()
				for range b.N {
					s := freshStore(b)
					b.StartTimer()
					start := time.Now()
					commitAll(b, persistence.NewWriter(s, opt), recs, 256, perCommit)
					took += time.Since(start)
					b.StopTimer()
					s.Close()
					rows += len(recs)
				}
				b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
				b.ReportMetric(float64(rows)/float64(batches), "rows/batch")
			})
		}
	}
}

// commitAll commits recs through w from callers goroutines, perCommit
// records per Commit, then closes w.
func commitAll(b *testing.B, w *persistence.Writer, recs []sluice.Record, callers, perCommit int) {
	var wg sync.WaitGroup
	chunks := (len(recs) + perCommit - 1) / perCommit
	for g := range callers {
		wg.Go(func() {
			for c := g; c < chunks; c += callers {
				chunk := recs[c*perCommit : min((c+1)*perCommit, len(recs))]
				if err := w.Commit(context.Background(), chunk...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		b.Error(err)
	}
}

// BenchmarkWriteBatch measures Store.Write alone from one goroutine: the
// baseline for the writer, as CopyFrom is for Postgres.
func BenchmarkWriteBatch(b *testing.B) {
	recs := benchRecords(benchRows)
	for _, size := range []int{1000, 4096} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var took time.Duration
			rows := 0
			b.StopTimer()
			for range b.N {
				s := freshStore(b)
				b.StartTimer()
				start := time.Now()
				for i := 0; i < len(recs); i += size {
					if err := s.Write(context.Background(), recs[i:min(i+size, len(recs))]); err != nil {
						b.Fatal(err)
					}
				}
				took += time.Since(start)
				b.StopTimer()
				s.Close()
				rows += len(recs)
			}
			b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		})
	}
}

// BenchmarkPurgeArchived: deleting benchRows archived contracts (next to
// as many live ones), in the engine's batches of 2,000, after a
// checkpoint put them in the database file. Reports records/s and the
// slowest batch, the transaction the answers' commits may wait behind.
func BenchmarkPurgeArchived(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		s, err := embedded.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		recs := benchRecords(2 * benchRows)
		for i := range recs[:benchRows] {
			recs[i].Live, recs[i].Version = false, 2
		}
		for c := range slices.Chunk(recs, 5000) {
			if err := s.Write(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		s.Close() // checkpoints
		if s, err = embedded.Open(dir, nil); err != nil {
			b.Fatal(err)
		}
		storetest.PurgeBenchmark(b, s, 2000)
		s.Close()
	}
}
