package actors

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
)

// TestArchivedContractsArePurged: a closed contract's record answers its
// farmer ("contract expired") for the archive retention; the purge that
// follows deletes it, after which the farmer is told the contract is not
// found. Live contracts stay.
func TestArchivedContractsArePurged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const retention = 2 * time.Hour
		store := newMemStore()
		n := startWith(t, store, Config{ArchiveRetention: retention, Terms: sluice.Terms{Interval: interval}})
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 64<<10)
		if len(cs) != 2 {
			t.Fatalf("got %d contracts, want 2", len(cs))
		}
		gone, kept := cs[0], cs[1]
		// kept answers every challenge; gone never does.
		var expiredAt time.Time
		for c := kept; time.Since(gone.Due) < retention+2*purgeEvery(retention); {
			if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); err != nil {
				t.Fatalf("answer: %v", err)
			}
			sleepUntil(c.Due)
			if expiredAt.IsZero() {
				expiredAt = time.Now()
				if r, err := n.Challenge(ctx, raw, gone.FileHash); err != nil || !errors.Is(r.Err, sluice.ErrContractExpired) {
					t.Fatalf("challenge of the expired contract: %v / %v, want %q", err, r.Err, sluice.MsgContractExpired)
				}
			}
			if time.Since(expiredAt) < retention {
				if _, ok := store.contract(gone.ID()); !ok {
					t.Fatalf("archived record purged %v after the contract expired, before the retention of %v", time.Since(expiredAt), retention)
				}
			}
			r, err := n.Challenge(ctx, raw, kept.FileHash)
			if err != nil || r.Err != nil {
				t.Fatalf("challenge of the live contract: %v / %v", err, r.Err)
			}
			c = kept
			c.Challenge, c.Due = r.Challenge, r.Due
		}
		if _, ok := store.contract(gone.ID()); ok {
			t.Fatalf("archived record still there %v after the contract expired (retention %v)", time.Since(expiredAt), retention)
		}
		if r, err := n.Challenge(ctx, raw, gone.FileHash); err != nil || !errors.Is(r.Err, sluice.ErrContractNotFound) {
			t.Fatalf("challenge of the purged contract: %v / %v, want %q", err, r.Err, sluice.MsgContractNotFound)
		}
	})
}
