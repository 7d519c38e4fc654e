package embedded

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice"
)

// TestBackfillPassesCorruptValues: backfill skips an archived record whose
// value is corrupt ("left for ever") but does not move its mark past it,
// so when a batch of limit steps ends on corrupt values the next call
// starts over at the same place: with limit or more corrupt values in a
// row, the backfill never ends, every call says more remains (the
// engine's pass never finishes), and the records after them are never
// indexed nor purged. Here limit 1 and one corrupt value make it show.
func TestBackfillPassesCorruptValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := []sluice.Record{
		{Kind: sluice.KindContract, ID: "a-corrupt", Version: 2, State: []byte("expired")},
		{Kind: sluice.KindContract, ID: "b-good", Version: 2, State: []byte("expired")},
	}
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A database from before the index, with one corrupt archived value.
	db, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(archivedAtName(sluice.KindContract)); err != nil {
			return err
		}
		return tx.Bucket(bucketName(sluice.KindContract, false)).Put([]byte("a-corrupt"), []byte{0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after := time.Now().Add(time.Hour)
	const limit, calls = 1, 10
	more := true
	for i := 0; i < calls && more; i++ {
		if _, more, err = s.PurgeArchived(ctx, sluice.KindContract, after, limit); err != nil {
			t.Fatal(err)
		}
	}
	if more {
		t.Errorf("PurgeArchived(limit %d) still says more remains after %d calls (2 archived records)", limit, calls)
	}
	if _, err := s.Get(ctx, sluice.KindContract, "b-good"); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("b-good after %d purges past its time: %v, want not found (never indexed)", calls, err)
	}
}
