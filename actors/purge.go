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
	// purgeBatch is the most records one store call deletes.
	purgeBatch = 10_000
	// purgeTimeout bounds one store call.
	purgeTimeout = time.Minute
	eventPurged  = "store.archive_purged"
	eventPurgeKO = "store.archive_purge_failed"
)

// purgeEvery is how often the archive is purged: a quarter of the
// retention, between a minute and an hour.
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

// purgeOnce deletes every archived contract past the retention, in
// batches, unless the engine stops first.
func (e *Engine) purgeOnce(p Purger) {
	before := e.now().Add(-e.cfg.ArchiveRetention)
	total := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), purgeTimeout)
		n, err := p.PurgeArchived(ctx, sluice.KindContract, before, purgeBatch)
		cancel()
		total += n
		e.metrics.ArchivePurged.Add(float64(n))
		if err != nil {
			e.log.Warn(eventPurgeKO, zap.Int("records", total), zap.Error(err))
			return
		}
		if n < purgeBatch {
			break
		}
		select {
		case <-e.stop:
			return
		default:
		}
	}
	if total > 0 {
		e.log.Info(eventPurged, zap.Int("records", total), zap.Time("archived_before", before))
	}
}
