package actors

import (
	"context"
	"time"

	"github.com/sluicehq/sluice"
)

// Store is what the actors need from a persistence backend. Both
// persistence/postgres and persistence/embedded implement it, and
// persistence/storetest checks that they behave the same.
type Store interface {
	// Write commits every record in one atomic transaction. A record whose
	// Version is not newer than the stored one is skipped, not an error.
	// When Write returns nil the records survive a crash.
	Write(ctx context.Context, recs []sluice.Record) error
	// Live calls fn for every live record of the kind, in no particular
	// order, streaming (it never holds all of them in memory at once). fn
	// owns the record it is given (it may keep it or pass it to another
	// goroutine) but must not call the store. An error from fn stops the
	// scan and is returned.
	Live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error
	// Get returns the record, live or archived, or an error wrapping
	// sluice.ErrNotFound.
	Get(ctx context.Context, kind sluice.RecordKind, id string) (sluice.Record, error)
	// Close releases the store.
	Close() error
}

// Purger is a Store that can delete old archived records (both stores
// can). The engine purges closed contracts older than its
// ArchiveRetention through it.
type Purger interface {
	// PurgeArchived deletes archived records of kind that were archived
	// before before, oldest first, in one bounded step of about limit
	// records, and returns how many it deleted and whether more may
	// remain.
	PurgeArchived(ctx context.Context, kind sluice.RecordKind, before time.Time, limit int) (purged int, more bool, err error)
}
