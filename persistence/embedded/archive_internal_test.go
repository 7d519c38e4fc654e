package embedded

import (
	"context"
	"errors"
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
	if n, err := s.PurgeArchived(ctx, sluice.KindContract, upgraded.Add(-time.Second), 10); err != nil || n != 0 {
		t.Fatalf("purge before the upgrade: %d, %v; want 0", n, err)
	}
	if n, err := s.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("purge after the upgrade: %d, %v; want 1", n, err)
	}
	if _, err := s.Get(ctx, sluice.KindContract, "gone"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("purged record: got %v, want not found", err)
	}
	if r, err := s.Get(ctx, sluice.KindContract, "running"); err != nil || !r.Live {
		t.Fatalf("live record: %+v, %v", r, err)
	}
}
