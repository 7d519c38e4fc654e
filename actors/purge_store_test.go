package actors

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence/embedded"
)

// TestPurgeOnceEmptiesTheBacklogDespiteStaleEntries: one purge pass
// deletes every archived contract past the retention, in batches, also
// when an index entry left stale by a contract id that became live again
// (sluice.ContractID is farmer and file hash, so a piece handed to the
// same farmer again reuses it) takes a batch's step without a record
// purged.
func TestPurgeOnceEmptiesTheBacklogDespiteStaleEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := embedded.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	archived := func(id string, v uint64) sluice.Record {
		return sluice.Record{Kind: sluice.KindContract, ID: id, Owner: "f", Version: v, State: []byte("expired")}
	}
	// "a-reused" sorts first in the index (same checkpoint time, then id).
	recs := []sluice.Record{archived("a-reused", 2)}
	for i := range purgeBatch + 1 {
		recs = append(recs, archived(fmt.Sprintf("c%06d", i), 2))
	}
	for len(recs) > 0 {
		n := min(len(recs), 2000)
		if err := s.Write(ctx, recs[:n]); err != nil {
			t.Fatal(err)
		}
		recs = recs[n:]
	}
	if err := s.Close(); err != nil { // checkpointed, indexed
		t.Fatal(err)
	}
	if s, err = embedded.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	live := archived("a-reused", 3)
	live.Live = true
	if err := s.Write(ctx, []sluice.Record{live}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // the entry of "a-reused" is stale now
		t.Fatal(err)
	}
	if s, err = embedded.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	e := &Engine{cfg: Config{ArchiveRetention: time.Nanosecond}, metrics: metrics.New(), log: zap.NewNop(),
		stop: make(chan struct{})}
	e.purgeOnce(s)
	left, _, err := s.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("after one purge pass, %d archived contracts past the retention are still there, want 0", left)
	}
}
