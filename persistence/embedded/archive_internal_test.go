package embedded

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice"
)

// TestArchivesOfAnOlderStoreAreIndexed: a database written before the
// archived-at index existed gets one when it is opened, dated then, so its
// archived records are purged a retention period after the upgrade.
func TestArchivesOfAnOlderStoreAreIndexed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := []sluice.Record{
		{Kind: sluice.KindContract, ID: "gone", Version: 2, State: []byte("expired")},
		{Kind: sluice.KindContract, ID: "running", Version: 1, Live: true, State: []byte("live")},
	}
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to the layout before the index.
	db, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(archivedAtName(sluice.KindContract)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	upgraded := time.Now()
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _, err := s.PurgeArchived(ctx, sluice.KindContract, upgraded.Add(-time.Second), 10); err != nil || n != 0 {
		t.Fatalf("purge before the upgrade: %d, %v; want 0", n, err)
	}
	if n, _, err := s.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("purge after the upgrade: %d, %v; want 1", n, err)
	}
	if _, err := s.Get(ctx, sluice.KindContract, "gone"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("purged record: got %v, want not found", err)
	}
	if r, err := s.Get(ctx, sluice.KindContract, "running"); err != nil || !r.Live {
		t.Fatalf("live record: %+v, %v", r, err)
	}
}

// TestUpgradeWithUnflushedLogIndexesOldArchives: a database written before
// the archived-at index, whose process was killed (or whose last checkpoint
// failed) with a contract record still in the log. On the first Open of the
// new version the replay makes the index bucket for the replayed records;
// the archived contracts the old version had put in bbolt must still get
// their entries and be purged.
func TestUpgradeWithUnflushedLogIndexesOldArchives(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Checkpointed by Close: in bbolt's archive bucket.
	if err := s.Write(ctx, []sluice.Record{{Kind: sluice.KindContract, ID: "old", Version: 2, State: []byte("expired")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The old binary runs again and is killed with a contract in the log.
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []sluice.Record{{Kind: sluice.KindContract, ID: "new", Version: 1, Live: true, State: []byte("live")}}); err != nil {
		t.Fatal(err)
	}
	s.Crash()
	// Back to the layout before the index (the old binary never made it).
	db, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(archivedAtName(sluice.KindContract)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// The upgrade.
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _, err := s.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
		t.Errorf("purge after the upgrade: %d, %v; want 1 (the archived contract \"old\")", n, err)
	}
	if _, err := s.Get(ctx, sluice.KindContract, "old"); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("archived contract of the old database after a purge past its time: got %v, want not found (never indexed, never purged)", err)
	}
}

// TestPurgeLimitCountsStaleEntries: an index entry whose record was made
// live again (a contract id handed out again: sluice.ContractID is farmer
// and file hash) is stale. Dropping it takes one of the call's steps
// without a record purged: the call must still say that more may be
// left, or the engine's pass stops early.
func TestPurgeLimitCountsStaleEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := []sluice.Record{{Kind: sluice.KindContract, ID: "a-reused", Version: 2, State: []byte("expired")}}
	for i := range 3 {
		recs = append(recs, sluice.Record{Kind: sluice.KindContract, ID: fmt.Sprintf("c%d", i), Version: 2, State: []byte("expired")})
	}
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // checkpoint: four index entries
		t.Fatal(err)
	}
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	// The id comes back as a new live contract.
	if err := s.Write(ctx, []sluice.Record{{Kind: sluice.KindContract, ID: "a-reused", Version: 3, Live: true, State: []byte("live")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const limit = 3
	n, more, err := s.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), limit)
	if err != nil {
		t.Fatal(err)
	}
	left, _, err := s.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	if !more && left > 0 {
		t.Errorf("PurgeArchived(limit %d) purged %d and said nothing more was left, yet %d eligible archived records were", limit, n, left)
	}
	if n+left != 3 {
		t.Errorf("purged in all: %d, want 3 (c0, c1, c2; a-reused is live)", n+left)
	}
}
