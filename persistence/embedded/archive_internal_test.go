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

// archived and live are contract records for the archive tests.
func archived(id string, v uint64) sluice.Record {
	return sluice.Record{Kind: sluice.KindContract, ID: id, Version: v, State: []byte("expired")}
}

func live(id string, v uint64) sluice.Record {
	return sluice.Record{Kind: sluice.KindContract, ID: id, Version: v, Live: true, State: []byte("live")}
}

// reopen opens the store in dir, closed when the test ends.
func reopen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkpointed writes recs to the store in dir and closes it, which
// copies them into the database file.
func checkpointed(t *testing.T, dir string, recs ...sluice.Record) {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// asBeforeIndex turns the database file in dir back into the layout from
// before the archived-at index, then applies more, if any, to it.
func asBeforeIndex(t *testing.T, dir string, more func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(archivedAtName(sluice.KindContract)); err != nil || more == nil {
			return err
		}
		return more(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestArchivesOfAnOlderStoreAreIndexed: a database written before the
// archived-at index existed gets one when it is opened, dated then, so its
// archived records are purged a retention period after the upgrade.
func TestArchivesOfAnOlderStoreAreIndexed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	checkpointed(t, dir, archived("gone", 2), live("running", 1))
	asBeforeIndex(t, dir, nil)

	upgraded := time.Now()
	s := reopen(t, dir)
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
	checkpointed(t, dir, archived("old", 2))
	// The old binary runs again and is killed with a contract in the log.
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []sluice.Record{live("new", 1)}); err != nil {
		t.Fatal(err)
	}
	s.Crash()
	asBeforeIndex(t, dir, nil) // the old binary never made it

	s = reopen(t, dir) // the upgrade
	if n, _, err := s.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
		t.Errorf("purge after the upgrade: %d, %v; want 1 (the archived contract \"old\")", n, err)
	}
	if _, err := s.Get(ctx, sluice.KindContract, "old"); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("archived contract of the old database after a purge past its time: got %v, want not found (never indexed, never purged)", err)
	}
}

// TestBackfillPassesCorruptValues: the backfill of an older database skips
// an archived record whose value is corrupt (it is left for ever) and goes
// on past it: with limit 1, a corrupt value must not hold every later call
// at the same place, saying more remains, while the records after it are
// never indexed nor purged.
func TestBackfillPassesCorruptValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	checkpointed(t, dir, archived("a-corrupt", 2), archived("b-good", 2))
	asBeforeIndex(t, dir, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName(sluice.KindContract, false)).Put([]byte("a-corrupt"), []byte{0xff})
	})

	s := reopen(t, dir)
	after := time.Now().Add(time.Hour)
	const limit, calls = 1, 10
	more := true
	var err error
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

// TestPurgeLimitCountsStaleEntries: an index entry whose record was made
// live again (a contract id handed out again: sluice.ContractID is farmer
// and file hash) is stale. Dropping it takes one of the call's steps
// without a record purged: the call must still say that more may be
// left, or the engine's pass stops early.
func TestPurgeLimitCountsStaleEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	recs := []sluice.Record{archived("a-reused", 2)}
	for i := range 3 {
		recs = append(recs, archived(fmt.Sprintf("c%d", i), 2))
	}
	checkpointed(t, dir, recs...)             // four index entries
	checkpointed(t, dir, live("a-reused", 3)) // the id comes back as a new live contract

	s := reopen(t, dir)
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
