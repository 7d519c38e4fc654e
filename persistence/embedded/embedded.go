// Package embedded is the zero-setup snapshot store: one bbolt file in the
// data directory with a write-ahead log in front of it, pure Go, nothing to
// install. It behaves like persistence/postgres (persistence/storetest
// checks both); DECISION.md says why bbolt, and why the log.
//
// A Write appends one frame to the log and fdatasyncs it (wal.go); the
// records it holds are then served from memory until a checkpoint copies
// them into bbolt, in sorted transactions of checkpointChunk records, and
// the log segment is reused.
// Open replays whatever the log holds that bbolt may not have.
//
// bbolt layout: one bucket per (kind, live|archive), named
// "snap/<kind>/live" and "snap/<kind>/archive". The key is the record id;
// the value is a small header followed by the state bytes:
//
//	format byte (1) | version uvarint | len(owner) uvarint | owner | state
//
// A record lives in exactly one of its kind's two buckets, so loading the
// live records at start-up never reads archived ones.
//
// Next to the contracts' archive bucket (the one kind the node purges),
// "snap/<kind>/archived-at" indexes it by the time records were archived,
// for PurgeArchived: the key is the checkpoint time that put the record
// there (Unix nanoseconds, 8 bytes big-endian) followed by the id, the
// value the version archived (uvarint). An entry whose version is no
// longer the archived one (the record was archived again, or is live
// again) is stale and only dropped. A database from before the index gets
// it gradually: Open notes the backfill in "meta/archived-at-backfill"
// (the time of the upgrade, then the last id indexed), and PurgeArchived
// works through it a batch at a time.
package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// FileName is the name of the database file inside the data directory.
const FileName = "sluice.db"

// lockTimeout is how long Open waits for the file lock before concluding
// that another process holds the data directory.
const lockTimeout = 2 * time.Second

// valueFormat tags the encoding of stored values, so a later change of the
// header can be told apart from today's.
const valueFormat byte = 1

// Events logged by this package.
const (
	evOpened           = "store.opened"
	evReplayed         = "store.log_replayed"
	evCheckpoint       = "store.checkpoint"
	evCheckpointFailed = "store.checkpoint_failed"
	evCorrupt          = "store.corrupt_value"
	evBadHeader        = "store.log_header_unreadable"
)

// Store is a snapshot store in one bbolt file behind a write-ahead log. It
// implements actors.Store and is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	log      *zap.Logger
	segBytes int64

	// wmu serialises the log: appends, segment switches and Close.
	wmu    sync.Mutex
	segs   [2]segment
	active int   // the segment appends go to
	off    int64 // where the next frame goes in it
	// failed is set when a log sync (or a segment reset) failed: what the
	// file holds is then unknown, so no further write is acknowledged.
	failed error
	closed bool
	// ckDone is closed when the last checkpoint has finished, which frees
	// the segment that is not active for reuse.
	ckDone chan struct{}

	// mu guards the two maps of records that are in the log but may not
	// be in bbolt yet, each at the highest version logged: cur holds what
	// the active segment logged, prev what the other segment logged, which
	// the running checkpoint is copying into bbolt. prev is never changed,
	// only replaced: a rotation moves cur to prev in one step, so it costs
	// nothing however many records there are, and a finished checkpoint
	// drops prev. Reads take the higher version of the two and bbolt's.
	mu   sync.RWMutex
	cur  map[memKey]sluice.Record
	prev map[memKey]sluice.Record

	jobs    chan checkpoint
	hurry   atomic.Bool   // a Write waits for the running checkpoint: no pauses
	stalled atomic.Bool   // a Write is blocked in rotate (read by tests)
	filled  atomic.Int64  // off, for the checkpointer's pace
	quit    chan struct{} // closed by Close: a failing checkpoint stops retrying
	quitter sync.Once     // closes quit
	stopped chan struct{} // closed when the checkpointer has returned
}

// memKey identifies a record in cur or prev.
type memKey struct {
	kind sluice.RecordKind
	id   string
}

// checkpoint is one segment's records to copy into bbolt.
type checkpoint struct {
	recs map[memKey]sluice.Record // prev: not changed while the checkpoint runs
	seg  int                      // the segment they were logged in
	// next is the epoch the segment gets once its records are in bbolt,
	// ready for the rotation after the next one.
	next uint64
	done chan struct{}
}

// Open opens (creating if needed) the store in dir, creating dir too,
// replays the write-ahead log into bbolt, and starts the checkpointer. If
// another process has the directory open, Open fails after two seconds
// instead of waiting forever.
func Open(dir string, log *zap.Logger) (*Store, error) {
	return open(dir, log, defaultSegmentBytes)
}

func open(dir string, log *zap.Logger, segBytes int64) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// bbolt's other defaults stay: NoFreelistSync (as etcd sets it) made
	// no measurable difference to batched writes here. bbolt's file lock
	// also guards the log: the segments are opened only once it is held.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded store: %s is locked; data dir is in use by another sluice process? (%w)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded store: open %s: %w", path, err)
	}
	s := &Store{
		db:       db,
		log:      log,
		segBytes: segBytes,
		cur:      map[memKey]sluice.Record{},
		jobs:     make(chan checkpoint, 1),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	err = s.noteBackfills()
	if err == nil {
		err = s.recover(dir)
	}
	if err != nil {
		for _, g := range s.segs {
			if g.f != nil {
				g.f.Close()
			}
		}
		db.Close()
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	done := make(chan struct{})
	close(done)
	s.ckDone = done
	go s.checkpointer()
	log.Info(evOpened, zap.String("path", path))
	return s, nil
}

// recover opens the log's segments, replays them oldest epoch first,
// copies what they hold into bbolt, and starts an empty segment 0 with an
// epoch newer than any in the files.
func (s *Store) recover(dir string) error {
	for i := range s.segs {
		g, bad, err := openSegment(dir, i)
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		if bad {
			s.log.Warn(evBadHeader, zap.String("file", g.f.Name()),
				zap.String("detail", "taken as empty: a header is rewritten only after its segment was checkpointed, so this is a rewrite the process did not finish"))
		}
		s.segs[i] = g
	}
	// The segment files may be new: make their names durable.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	order := []int{0, 1}
	if s.segs[1].epoch < s.segs[0].epoch {
		order = []int{1, 0}
	}
	start := time.Now()
	frames := 0
	for _, i := range order {
		if err := s.segs[i].replay(func(r sluice.Record) { frames++; s.remember(r) }); err != nil {
			return fmt.Errorf("replay log: %w", err)
		}
	}
	if len(s.cur) > 0 {
		recs := sorted(s.cur)
		var scratch []byte
		for c := range slices.Chunk(recs, checkpointChunk) {
			if err := s.apply(c, &scratch); err != nil {
				return fmt.Errorf("checkpoint the replayed log: %w", err)
			}
		}
		clear(s.cur)
		s.log.Info(evReplayed, zap.Int("records", frames), zap.Int("applied", len(recs)),
			zap.Duration("took", time.Since(start)))
	}
	// Everything in both segments is now in bbolt: start segment 0 afresh,
	// and make segment 1 empty and ready for the first rotation, with
	// epochs no frame in either file has.
	epoch := max(s.segs[0].epoch, s.segs[1].epoch) + 1
	if err := s.segs[1].reset(epoch+1, s.segBytes); err != nil {
		return fmt.Errorf("reset log: %w", err)
	}
	if err := s.segs[0].reset(epoch, s.segBytes); err != nil {
		return fmt.Errorf("reset log: %w", err)
	}
	s.active, s.off = 0, walHeaderSize
	return nil
}

// syncDir fsyncs a directory, so the files created in it stay.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// remember puts r into cur unless cur already holds its id at the same or
// a newer version (the first of equal versions stays, as in bbolt). The
// caller holds mu, or is the only one using the store.
func (s *Store) remember(r sluice.Record) {
	k := memKey{r.Kind, r.ID}
	if old, ok := s.cur[k]; ok && old.Version >= r.Version {
		return
	}
	s.cur[k] = r
}

// logged returns the record as the log has it, if it is in cur or prev:
// the higher version, prev's on a tie (it was logged first). The caller
// holds mu.
func (s *Store) logged(k memKey) (sluice.Record, bool) {
	c, inCur := s.cur[k]
	p, inPrev := s.prev[k]
	if inCur && (!inPrev || c.Version > p.Version) {
		return c, true
	}
	return p, inPrev
}

// sorted returns m's records sorted by kind and id, the order of bbolt's
// pages.
func sorted(m map[memKey]sluice.Record) []sluice.Record {
	recs := make([]sluice.Record, 0, len(m))
	for _, r := range m {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b sluice.Record) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID))
	})
	return recs
}

// Path is the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// indexed reports whether archived records of kind get an archived-at
// index: only contracts, the kind the engine purges (deleted tokens are
// few, quotes are their owners' history).
func indexed(kind sluice.RecordKind) bool { return kind == sluice.KindContract }

// backfillBucket holds, per kind, an archived-at index still being built
// for records archived before the index existed: when (8 bytes), then the
// last id indexed.
var backfillBucket = []byte("meta/archived-at-backfill")

// archivedAtName names the index of a kind's archived records by time.
func archivedAtName(kind sluice.RecordKind) []byte {
	b := []byte("snap/")
	b = strconv.AppendUint(b, uint64(kind), 10)
	return append(b, "/archived-at"...)
}

// archivedAtKey is an index key: when (Unix nanoseconds), then id.
func archivedAtKey(when int64, id string) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), uint64(when))
	return append(k, id...)
}

// bucketName names the bucket of a kind's live or archived records.
func bucketName(kind sluice.RecordKind, live bool) []byte {
	b := []byte("snap/")
	b = strconv.AppendUint(b, uint64(kind), 10)
	if live {
		return append(b, "/live"...)
	}
	return append(b, "/archive"...)
}

var (
	errClosed = fmt.Errorf("store is closed: %w", sluice.ErrUnavailable)
	errBehind = fmt.Errorf("checkpoints are behind, the log is full: %w", sluice.ErrUnavailable)
)

// Write appends recs to the log as one frame and fdatasyncs it: when it
// returns nil the records are on disk, and Get and Live see them. A record
// whose version is not newer than the one stored (live or archived) is
// skipped; of several records with the same id the highest version wins
// (the first of equal ones). A record that changes its Live flag moves
// between its kind's live and archive records.
//
// Write waits, at most until ctx is done or the store closes, only when
// the active segment is full and the checkpoint of the other one has not
// finished. A failed write of the frame (a full disk) fails only this
// Write. After a failed sync every Write fails: what the file holds is
// then unknown, and only a restart, which replays it, can tell.
func (s *Store) Write(ctx context.Context, recs []sluice.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkRecords(recs); err != nil {
		return fmt.Errorf("embedded store: write: %w", err)
	}
	size := frameSize(recs)
	if size-frameHeaderSize > maxFrame {
		return fmt.Errorf("embedded store: write: %d records of %d bytes in all, over %d: %w",
			len(recs), size, maxFrame, sluice.ErrInvalid)
	}
	logged := make([]sluice.Record, len(recs))

	s.wmu.Lock()
	defer s.wmu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("embedded store: write: %w", errClosed)
	case s.failed != nil:
		return fmt.Errorf("embedded store: write: an earlier log write failed (%w): %w", s.failed, sluice.ErrUnavailable)
	}
	if s.off > walHeaderSize && s.off+int64(size) > s.segBytes {
		if err := s.rotate(ctx); err != nil {
			return fmt.Errorf("embedded store: write: %w", err)
		}
	}
	g := &s.segs[s.active]
	frame := encodeFrame(recs, g.epoch, size, logged)
	if _, err := writeFile(g.f, frame, s.off); err != nil {
		// Not sticky, unlike a failed sync: the next frame goes at the same
		// offset, and whatever part of this one reached the file lies
		// past its end, where a torn frame would (a full disk that gets
		// space back is the usual case).
		return fmt.Errorf("embedded store: write: %w", err)
	}
	if err := syncFile(g.f); err != nil {
		s.failed = err
		return fmt.Errorf("embedded store: write: %w", err)
	}
	s.off += int64(len(frame))
	s.filled.Store(s.off)
	s.mu.Lock()
	for _, r := range logged {
		s.remember(r)
	}
	s.mu.Unlock()
	return nil
}

// rotate moves the log to the other segment and hands the records the
// active one logged to the checkpointer. It first waits for the previous
// checkpoint, which frees that segment (and usually has reset it for
// reuse already). The caller holds wmu.
func (s *Store) rotate(ctx context.Context) error {
	s.hurry.Store(true)
	select {
	case <-s.ckDone:
	default:
		s.stalled.Store(true)
		defer s.stalled.Store(false)
		select {
		case <-s.ckDone:
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", errBehind, ctx.Err())
		case <-s.quit:
			return errClosed
		}
	}
	old, next := s.active, 1-s.active
	epoch := s.segs[old].epoch + 1
	if s.segs[next].epoch != epoch {
		if err := s.segs[next].reset(epoch, s.segBytes); err != nil {
			s.failed = err
			return err
		}
	}
	s.active, s.off = next, walHeaderSize
	s.filled.Store(s.off)
	s.mu.Lock()
	s.prev, s.cur = s.cur, make(map[memKey]sluice.Record, len(s.cur))
	recs := s.prev
	s.mu.Unlock()
	done := make(chan struct{})
	s.ckDone = done
	s.jobs <- checkpoint{recs: recs, seg: old, next: epoch + 1, done: done}
	return nil
}

// checkpointChunk is how many records one bbolt transaction of a
// checkpoint applies. The records are sorted first, so each chunk updates
// its own run of leaf pages: chunks of a few hundred cost no more per
// record than one transaction of fifty thousand, and a log sync waiting
// behind one commit's page writes waits a few milliseconds, not 300 ms
// (DECISION.md).
const checkpointChunk = 256

// checkpointRest is how long the checkpointer rests after each chunk, at
// most, as a multiple of the time the chunk took. A checkpoint at full
// speed keeps the disk busy with bbolt's page writes, and every log sync
// issued meanwhile waits behind them: at half the maximum rate, the
// answers' p99 went from 25 ms to 80-390 ms. The checkpointer rests that
// many times as long as its chunk took while the active segment is
// empty, less as it fills, and not at all once a Write waits for it.
const checkpointRest = 8

// checkpointer applies each rotated segment's records to bbolt, retrying
// a failed checkpoint (a full disk, say) until it succeeds or Close asks it
// to stop. Until a checkpoint succeeds its records stay in the log and in
// memory (prev), served from there.
func (s *Store) checkpointer() {
	defer close(s.stopped)
	var scratch []byte
	for job := range s.jobs {
		start := time.Now()
		s.hurry.Store(false)
		recs := sorted(job.recs)
		for rest, wait := recs, 100*time.Millisecond; len(rest) > 0; {
			chunk := rest[:min(len(rest), checkpointChunk)]
			t0 := time.Now()
			if err := s.apply(chunk, &scratch); err != nil {
				s.log.Error(evCheckpointFailed, zap.Int("records", len(rest)), zap.Error(err))
				select {
				case <-s.quit:
					// Left in the log, which Open replays.
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, 10*time.Second)
				continue
			}
			took := time.Since(t0)
			rest = rest[len(chunk):]
			// Rest (see checkpointRest), unless a Write is waiting for
			// this checkpoint to free its segment or the store is closing.
			if len(rest) > 0 && !s.hurry.Load() {
				select {
				case <-time.After(s.rest(took)):
				case <-s.quit:
				}
			}
		}
		// bbolt has every record now: reads no longer need prev.
		s.mu.Lock()
		s.prev = nil
		s.mu.Unlock()
		// Make the segment ready for its next turn now, rather than in the
		// rotation, which holds up every Write while it runs. If this
		// fails, the rotation tries again.
		if err := s.segs[job.seg].reset(job.next, s.segBytes); err != nil {
			s.log.Warn(evCheckpointFailed, zap.String("detail", "reset the checkpointed log segment"), zap.Error(err))
		}
		s.log.Info(evCheckpoint, zap.Int("records", len(recs)), zap.Duration("took", time.Since(start)))
		close(job.done)
	}
}

// rest is how long the checkpointer rests after a chunk that took took:
// up to checkpointRest times as long while the active segment is empty,
// down to nothing as it fills up, so the checkpoint still ends before the
// next one is due.
func (s *Store) rest(took time.Duration) time.Duration {
	room := 1 - float64(s.filled.Load())/float64(s.segBytes)
	return time.Duration(float64(took) * checkpointRest * max(room, 0))
}

// apply copies recs into bbolt in one fsync'd transaction, skipping any
// whose version is not newer than the stored one. The values are built in
// *scratch, grown as needed: bbolt refers to them only until the commit,
// so the checkpointer reuses one buffer for all its transactions.
func (s *Store) apply(recs []sluice.Record, scratch *[]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		// Buckets of the kinds in this batch, created on first use.
		type pair struct{ live, archive, archivedAt *bolt.Bucket }
		now := time.Now().UnixNano()
		buckets := map[sluice.RecordKind]pair{}
		// Sized for every value, so appending never moves the ones that
		// bbolt already holds.
		size := 0
		for i := range recs {
			size += valueSize(recs[i])
		}
		if cap(*scratch) < size {
			*scratch = make([]byte, 0, size)
		}
		vals := (*scratch)[:0]
		for _, r := range recs {
			p, ok := buckets[r.Kind]
			if !ok {
				live, err := tx.CreateBucketIfNotExists(bucketName(r.Kind, true))
				if err != nil {
					return err
				}
				archive, err := tx.CreateBucketIfNotExists(bucketName(r.Kind, false))
				if err != nil {
					return err
				}
				var archivedAt *bolt.Bucket
				if indexed(r.Kind) {
					if archivedAt, err = tx.CreateBucketIfNotExists(archivedAtName(r.Kind)); err != nil {
						return err
					}
					archivedAt.FillPercent = 1 // keys only ever grow: pages filled up
				}
				p = pair{live, archive, archivedAt}
				buckets[r.Kind] = p
			}
			key := []byte(r.ID)
			target, other := p.live, p.archive
			if !r.Live {
				target, other = other, target
			}
			// Look in the target bucket first: most writes update a record
			// without moving it.
			inTarget := true
			v := target.Get(key)
			if v == nil {
				inTarget = false
				v = other.Get(key)
			}
			if v != nil {
				stored, err := decodeVersion(v)
				if err != nil {
					// Nothing to compare with: the logged record replaces
					// it, rather than one bad value stopping every
					// checkpoint (and every Write once the log is full).
					s.log.Error(evCorrupt, zap.Stringer("kind", r.Kind), zap.String("id", r.ID),
						zap.Uint64("replaced_by_version", r.Version))
				} else if stored >= r.Version {
					continue
				}
			}
			// bbolt keeps a reference to the value until commit: each
			// record's value is its own part of the transaction's buffer.
			start := len(vals)
			vals = appendValue(vals, r)
			if err := target.Put(key, vals[start:len(vals):len(vals)]); err != nil {
				return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
			}
			if v != nil && !inTarget {
				if err := other.Delete(key); err != nil {
					return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
				}
			}
			if !r.Live && p.archivedAt != nil {
				ver := binary.AppendUvarint(nil, r.Version)
				if err := p.archivedAt.Put(archivedAtKey(now, r.ID), ver); err != nil {
					return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
				}
			}
		}
		return nil
	})
}

// PurgeArchived deletes archived records of kind that were archived
// before before, oldest first, in one transaction of at most limit steps
// (a record deleted, a stale index entry dropped, or a record of an older
// database indexed), and returns how many records it deleted and whether
// more steps may remain. The archive time is that of the checkpoint that
// copied the record into bbolt (at most one log segment after its Write);
// records still only in the log are never purged. Live records are never
// touched.
func (s *Store) PurgeArchived(ctx context.Context, kind sluice.RecordKind, before time.Time, limit int) (int, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	purged, steps := 0, 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		index, archive := tx.Bucket(archivedAtName(kind)), tx.Bucket(bucketName(kind, false))
		if index == nil || archive == nil {
			return nil
		}
		index.FillPercent = 1
		var err error
		if steps, err = backfill(tx, kind, index, archive, limit); err != nil || steps >= limit {
			return err
		}
		cut := before.UnixNano()
		c := index.Cursor()
		for ; steps < limit; steps++ {
			k, v := c.First()
			if k == nil || len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) >= cut {
				steps = 0 // nothing more before the cut-off
				break
			}
			want, n := binary.Uvarint(v)
			if stored := archive.Get(k[min(8, len(k)):]); len(k) > 8 && n > 0 && stored != nil {
				if ver, err := decodeVersion(stored); err == nil && ver == want {
					if err := archive.Delete(k[8:]); err != nil {
						return err
					}
					purged++
				}
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("embedded store: purge archived %s: %w", kind, classify(err))
	}
	return purged, steps >= limit, nil
}

// backfill indexes up to limit archived records of an older database (see
// backfillBucket), if any are left, and returns how many it indexed.
func backfill(tx *bolt.Tx, kind sluice.RecordKind, index, archive *bolt.Bucket, limit int) (int, error) {
	marks := tx.Bucket(backfillBucket)
	if marks == nil {
		return 0, nil
	}
	mk := []byte{byte(kind)}
	mark := marks.Get(mk)
	if len(mark) < 8 {
		return 0, nil
	}
	when, last := int64(binary.BigEndian.Uint64(mark)), mark[8:]
	c := archive.Cursor()
	k, v := c.First()
	if len(last) > 0 {
		if k, v = c.Seek(last); k != nil && bytes.Equal(k, last) {
			k, v = c.Next()
		}
	}
	n := 0
	for ; k != nil && n < limit; k, v = c.Next() {
		n++
		last = k
		ver, err := decodeVersion(v)
		if err != nil {
			continue // left for ever, as a corrupt value is
		}
		if err := index.Put(archivedAtKey(when, string(k)), binary.AppendUvarint(nil, ver)); err != nil {
			return n, err
		}
	}
	if k == nil {
		return n, marks.Delete(mk)
	}
	return n, marks.Put(mk, append(binary.BigEndian.AppendUint64(nil, uint64(when)), last...))
}

// noteBackfills runs at Open, before the log is replayed: an archive
// bucket of an indexed kind without its index is a database from before
// the index, and gets an empty index and a backfill mark dated now, which
// PurgeArchived works through. (After the replay the index may exist,
// made by replayed records, yet be incomplete: hence before.)
func (s *Store) noteBackfills() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		kind := sluice.KindContract
		if tx.Bucket(bucketName(kind, false)) == nil || tx.Bucket(archivedAtName(kind)) != nil {
			return nil
		}
		if _, err := tx.CreateBucket(archivedAtName(kind)); err != nil {
			return err
		}
		marks, err := tx.CreateBucketIfNotExists(backfillBucket)
		if err != nil {
			return err
		}
		return marks.Put([]byte{byte(kind)}, binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
	})
}

// Live calls fn for every live record of kind, in id order, from one
// consistent view of the store.
//
// fn runs inside a bbolt read transaction: it must not call back into the
// store, nor wait for a Write to finish (a checkpoint that has to grow the
// file waits for open read transactions, and a Write may wait for the
// checkpoint). Records passed to fn are copies and may be kept.
func (s *Store) Live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error {
	// The logged records and the bbolt snapshot are taken together under
	// mu: a checkpoint commits to bbolt before it drops prev, so a record
	// is always in one or the other.
	s.mu.RLock()
	var over []sluice.Record
	for k := range s.cur {
		if k.kind == kind {
			r, _ := s.logged(k)
			over = append(over, r)
		}
	}
	for k, r := range s.prev {
		if _, inCur := s.cur[k]; k.kind == kind && !inCur {
			over = append(over, r)
		}
	}
	tx, err := s.db.Begin(false)
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("embedded store: live %s: %w", kind, classify(err))
	}
	defer tx.Rollback()
	slices.SortFunc(over, func(a, b sluice.Record) int { return strings.Compare(a.ID, b.ID) })
	if err := liveMerged(ctx, tx, kind, over, fn); err != nil {
		return fmt.Errorf("embedded store: live %s: %w", kind, classify(err))
	}
	return nil
}

// liveMerged walks the live bucket and over (the log's records of kind, in id
// order) together. Of a record in both, the higher version wins (bbolt's on
// a tie); it is passed to fn if it is live. A record only in over is
// checked against the archive bucket the same way.
func liveMerged(ctx context.Context, tx *bolt.Tx, kind sluice.RecordKind, over []sluice.Record, fn func(sluice.Record) error) error {
	var c *bolt.Cursor
	if b := tx.Bucket(bucketName(kind, true)); b != nil {
		c = b.Cursor()
	}
	archive := tx.Bucket(bucketName(kind, false))
	var k, v []byte
	if c != nil {
		k, v = c.First()
	}
	for k != nil || len(over) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		var (
			r   sluice.Record
			err error
		)
		switch {
		case k != nil && (len(over) == 0 || string(k) < over[0].ID):
			r, err = decode(kind, k, v, true)
			k, v = c.Next()
		case k != nil && string(k) == over[0].ID:
			o := over[0]
			over = over[1:]
			stored, derr := decodeVersion(v)
			switch {
			case derr != nil:
				err = fmt.Errorf("%s %q: %w", kind, k, derr)
			case o.Version > stored:
				r = clone(o)
			default:
				r, err = decode(kind, k, v, true)
			}
			k, v = c.Next()
		default: // only in the log, as far as the live bucket goes
			o := over[0]
			over = over[1:]
			r = clone(o)
			if archive != nil {
				if av := archive.Get([]byte(o.ID)); av != nil {
					stored, derr := decodeVersion(av)
					if derr != nil {
						return fmt.Errorf("%s %q: %w", kind, o.ID, derr)
					}
					if stored >= o.Version {
						continue // archived at that version or later
					}
				}
			}
		}
		if err != nil {
			return err
		}
		if !r.Live {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// clone copies r's state, so the caller may keep and change it.
func clone(r sluice.Record) sluice.Record {
	r.State = append([]byte{}, r.State...)
	return r
}

// Get returns the record, live or archived, or an error wrapping
// sluice.ErrNotFound.
func (s *Store) Get(ctx context.Context, kind sluice.RecordKind, id string) (sluice.Record, error) {
	if err := ctx.Err(); err != nil {
		return sluice.Record{}, err
	}
	// The log's records first: a checkpoint commits to bbolt before it
	// drops prev, so reading in this order cannot miss a record.
	s.mu.RLock()
	m, inMem := s.logged(memKey{kind, id})
	s.mu.RUnlock()
	var (
		r     sluice.Record
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, live := range []bool{true, false} {
			b := tx.Bucket(bucketName(kind, live))
			if b == nil {
				continue
			}
			if v := b.Get([]byte(id)); v != nil {
				var err error
				r, err = decode(kind, []byte(id), v, live)
				found = err == nil
				return err
			}
		}
		return nil
	})
	if err != nil {
		return sluice.Record{}, fmt.Errorf("embedded store: get %s %q: %w", kind, id, classify(err))
	}
	if inMem && (!found || m.Version > r.Version) {
		return clone(m), nil
	}
	if !found {
		return sluice.Record{}, fmt.Errorf("%s %q: %w", kind, id, sluice.ErrNotFound)
	}
	return r, nil
}

// Close checkpoints what the log holds, stops the checkpointer and closes
// the files. If that last checkpoint fails, the records stay in the log
// and the next Open replays them. Calls on a closed store fail with an
// error wrapping sluice.ErrUnavailable.
func (s *Store) Close() error {
	// Before taking wmu: a Write holding it may be waiting for a failing
	// checkpoint, which stops retrying, and the Write waiting, once quit
	// is closed. From here a failing checkpoint gets one try.
	s.quitter.Do(func() { close(s.quit) })
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	if s.failed == nil && s.off > walHeaderSize {
		select {
		case <-s.ckDone:
			// rotate does not wait: the other segment is free.
			if err := s.rotate(context.Background()); err != nil {
				errs = append(errs, fmt.Errorf("embedded store: close: %w", err))
			}
		case <-s.stopped:
			// The running checkpoint failed and gave up.
		}
	}
	close(s.jobs)
	failed := s.failed
	s.wmu.Unlock()
	<-s.stopped
	// Say so when sluice.db alone is not complete: the log still holds
	// records (the next Open replays them), and a copy of the data dir
	// needs its segment files too.
	var incomplete string
	select {
	case <-s.ckDone:
		if failed != nil {
			incomplete = fmt.Sprintf("a log sync failed earlier (%v)", failed)
		}
	default:
		incomplete = "the last checkpoint failed"
	}
	if incomplete != "" {
		errs = append(errs, fmt.Errorf("embedded store: close: %s; keep the %s.* files with %s, the next start replays them: %w",
			incomplete, walPrefix, FileName, sluice.ErrUnavailable))
	}
	for _, g := range s.segs {
		errs = append(errs, g.f.Close())
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

// classify marks a closed database as unavailable; other errors (a full
// disk, a corrupt value, a bug) pass through unclassified.
func classify(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", sluice.ErrUnavailable, err)
	}
	return err
}

// valueSize is the most bytes appendValue adds for r.
func valueSize(r sluice.Record) int {
	return 1 + 2*binary.MaxVarintLen64 + len(r.Owner) + len(r.State)
}

// appendValue appends the stored value of r to v.
func appendValue(v []byte, r sluice.Record) []byte {
	v = append(v, valueFormat)
	v = binary.AppendUvarint(v, r.Version)
	v = binary.AppendUvarint(v, uint64(len(r.Owner)))
	v = append(v, r.Owner...)
	return append(v, r.State...)
}

var errCorrupt = errors.New("corrupt stored value")

// decodeVersion reads only the version from a stored value.
func decodeVersion(v []byte) (uint64, error) {
	if len(v) == 0 || v[0] != valueFormat {
		return 0, errCorrupt
	}
	ver, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return 0, errCorrupt
	}
	return ver, nil
}

// decode turns a stored key and value into a Record, copying everything
// out of bbolt's memory map (which is only valid inside the transaction).
func decode(kind sluice.RecordKind, k, v []byte, live bool) (sluice.Record, error) {
	if len(v) == 0 || v[0] != valueFormat {
		return sluice.Record{}, fmt.Errorf("%s %q: %w", kind, k, errCorrupt)
	}
	rest := v[1:]
	ver, n := binary.Uvarint(rest)
	if n <= 0 {
		return sluice.Record{}, fmt.Errorf("%s %q: %w", kind, k, errCorrupt)
	}
	rest = rest[n:]
	ownerLen, n := binary.Uvarint(rest)
	if n <= 0 || ownerLen > uint64(len(rest)-n) {
		return sluice.Record{}, fmt.Errorf("%s %q: %w", kind, k, errCorrupt)
	}
	rest = rest[n:]
	return sluice.Record{
		Kind:    kind,
		ID:      string(k),
		Owner:   string(rest[:ownerLen]),
		Version: ver,
		Live:    live,
		State:   append([]byte{}, rest[ownerLen:]...),
	}, nil
}
