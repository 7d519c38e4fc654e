package actors

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// Archive purging: closed contracts are archived, not deleted, so that
// their farmer can still be told what became of them. Past the archive
// retention they are deleted, a bounded batch at a time. This is
// housekeeping on a clock of its own; no deadline depends on it.
const (
	// purgeBatch is about the most records one store call deletes: one
	// transaction short enough not to hold up the answers' commits.
	purgeBatch = 2_000
	// purgeTimeout bounds one store call.
	purgeTimeout = time.Minute
	eventPurged  = "store.archive_purged"
	eventPurgeKO = "store.archive_purge_failed"
)

// purgeEvery is how often the archive is purged: every quarter of the
// retention, at least once an hour and at most once a minute.
func purgeEvery(retention time.Duration) time.Duration {
	return min(max(retention/4, time.Minute), time.Hour)
}

// purgeArchives runs until the engine stops: a first purge a minute after
// start-up (out of its way), then one every purgeEvery.
func (e *Engine) purgeArchives(p Purger) {
	defer e.stopped.Done()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		e.purgeOnce(p)
		t.Reset(purgeEvery(e.cfg.ArchiveRetention))
	}
}

// purgeOnce deletes every archived contract past the retention, a batch
// at a time, resting as long as each batch took (the purge takes at most
// half of the store's time), until none is left or the engine stops.
func (e *Engine) purgeOnce(p Purger) {
	before := e.now().Add(-e.cfg.ArchiveRetention)
	stopped, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-e.stop:
			cancel() // Stop does not wait for a batch to run out
		case <-stopped.Done():
		}
	}()
	total := 0
	for {
		ctx, done := context.WithTimeout(stopped, purgeTimeout)
		start := time.Now()
		n, more, err := p.PurgeArchived(ctx, sluice.KindContract, before, purgeBatch)
		took := time.Since(start)
		done()
		total += n
		e.metrics.ArchivePurged.Add(float64(n))
		if err != nil && stopped.Err() == nil {
			e.log.Warn(eventPurgeKO, zap.Int("records", total), zap.Error(err))
			return
		}
		if err != nil || !more {
			break
		}
		select {
		case <-stopped.Done():
		case <-time.After(took):
		}
		if stopped.Err() != nil {
			break // stopping: what was purged is logged
		}
	}
	if total > 0 {
		e.log.Info(eventPurged, zap.Int("records", total), zap.Time("archived_before", before))
	}
}
