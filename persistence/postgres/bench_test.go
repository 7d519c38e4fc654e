package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/persistence/postgres"
	"github.com/sluicehq/sluice/persistence/postgres/pgtest"
	"github.com/sluicehq/sluice/persistence/storetest"
)

// benchRows is how many records each benchmark iteration writes.
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

func openBench(b *testing.B) *postgres.Store {
	s, err := postgres.Open(context.Background(), pgtest.DSN(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func exec(b *testing.B, s *postgres.Store, sql string) {
	if _, err := s.Pool().Exec(context.Background(), sql); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

// BenchmarkSnapshotWriter pushes benchRows fresh records through a
// persistence.Writer from 256 concurrent callers, each committing perCommit
// records at a time and waiting for each commit, as actors do.
func BenchmarkSnapshotWriter(b *testing.B) {
	s := openBench(b)
	recs := benchRecords(benchRows)
	for _, perCommit := range []int{1, 100} {
		for _, flushers := range []int{1, 2, 4} {
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
					exec(b, s, "TRUNCATE snapshots")
					b.StartTimer()
					start := time.Now()
					commitAll(b, persistence.NewWriter(s, opt), recs, 256, perCommit)
					took += time.Since(start)
					b.StopTimer()
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

// BenchmarkCopyFromBaseline is the ceiling the writer is measured against:
// one raw pool.CopyFrom of the same records into an identical, empty table
// (append only: no upsert, no version guard, no concurrency).
func BenchmarkCopyFromBaseline(b *testing.B) {
	s := openBench(b)
	recs := benchRecords(benchRows)
	exec(b, s, "CREATE TABLE snapshots_copy (LIKE snapshots INCLUDING ALL)")
	cols := []string{"kind", "id", "owner", "version", "live", "state"}
	var took time.Duration
	rows := 0
	b.StopTimer()
	for range b.N {
		exec(b, s, "TRUNCATE snapshots_copy")
		b.StartTimer()
		start := time.Now()
		n, err := s.Pool().CopyFrom(context.Background(), pgx.Identifier{"snapshots_copy"}, cols,
			pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
				r := &recs[i]
				return []any{int16(r.Kind), r.ID, r.Owner, int64(r.Version), r.Live, r.State}, nil
			}))
		took += time.Since(start)
		b.StopTimer()
		if err != nil || n != int64(len(recs)) {
			b.Fatalf("CopyFrom: %d rows, %v", n, err)
		}
		rows += len(recs)
	}
	b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
}

// BenchmarkWriteBatch measures Store.Write alone, with batches of the
// writer's default MaxBatch (the COPY-and-merge path) and of 256 rows (the
// unnest path), from one goroutine.
func BenchmarkWriteBatch(b *testing.B) {
	s := openBench(b)
	recs := benchRecords(benchRows)
	for _, size := range []int{256, 4096} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var took time.Duration
			rows := 0
			b.StopTimer()
			for range b.N {
				exec(b, s, "TRUNCATE snapshots")
				b.StartTimer()
				start := time.Now()
				for i := 0; i < len(recs); i += size {
					if err := s.Write(context.Background(), recs[i:min(i+size, len(recs))]); err != nil {
						b.Fatal(err)
					}
				}
				took += time.Since(start)
				b.StopTimer()
				rows += len(recs)
			}
			b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		})
	}
}

// BenchmarkWriteSmallBatch is one Store.Write of 11 updated contract rows
// of 630 bytes, the group commit the single-answer load makes: the bytes
// and allocations it costs the node per commit.
func BenchmarkWriteSmallBatch(b *testing.B) {
	s := openBench(b)
	recs := benchRecords(11)
	for i := range recs {
		recs[i].State = make([]byte, 630)
	}
	ctx := context.Background()
	if err := s.Write(ctx, recs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range recs {
			recs[i].Version++
		}
		if err := s.Write(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPurgeArchived: deleting benchRows archived contracts (next to
// as many live ones) in the engine's batches of 2,000. Reports records/s
// and the slowest batch.
func BenchmarkPurgeArchived(b *testing.B) {
	ctx := context.Background()
	s := openBench(b)
	for range b.N {
		b.StopTimer()
		exec(b, s, "TRUNCATE snapshots")
		recs := benchRecords(2 * benchRows)
		for i := range recs[:benchRows] {
			recs[i].Live, recs[i].Version = false, 2
		}
		for c := range slices.Chunk(recs, 5000) {
			if err := s.Write(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		storetest.PurgeBenchmark(b, s, 2000)
	}
}
