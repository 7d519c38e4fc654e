// Package blobstore is the node's temporary content-addressed store for
// uploaded files: each file is kept on local disk under its CID (CIDv1, raw
// codec, sha2-256) until the storage backend has it and a retention period
// has passed, and is served to microservices over HTTP as an IPFS gateway
// would (GET /ipfs/{cid}).
//
// Layout under the store's directory:
//
//	blobs/<cid>     one file per blob, named by its CID's string form
//	pending/<id>    uploads stored but not yet hashed (Stage, Seal)
//
// An upload is stored in two steps, so that it is acknowledged before it
// is hashed: Stage writes it to pending/<id> and fsyncs it; Seal later
// hashes it and hard-links it into blobs under its CID (and fsyncs the
// directory), so a blob never appears half-written; the caller Discards
// the pending name once it has recorded the CID. Put does all three. Open
// keeps pending/ (acknowledged uploads may still need sealing); the owner
// of the uploads names the ones it needs with SweepPending at start-up and
// the rest are removed.
//
// Retention (Release) is scheduled in memory with one timer per blob; the
// store keeps no schedule on disk. After a restart the owner of the
// retention policy re-issues Release for the blobs it still tracks and uses
// List to find, and Remove, the ones it no longer does.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
)

var (
	// ErrTooLarge is wrapped by Put when the input is longer than its limit.
	ErrTooLarge = errors.New("blob too large")
	// ErrNotFound is wrapped by Open when the store has no such blob. It
	// is of the domain kind sluice.ErrNotFound.
	ErrNotFound = fmt.Errorf("blob %w", sluice.ErrNotFound)
)

// Store is a directory of blobs named by CID. Its methods are safe for
// concurrent use.
type Store struct {
	blobs   string // dir/blobs
	pending string // dir/pending

	// mu serialises the changes to the blobs directory (rename in, remove)
	// with the pending releases, so a release that fires cannot remove a
	// blob that a concurrent Put has just stored again.
	mu       sync.Mutex
	releases map[CID]*release
	closed   bool
	// leftovers are the pending ids found by Open, until SweepPending
	// decides about them.
	leftovers map[string]bool
}

// release is one scheduled removal. Its identity tells a timer that fires
// whether it is still the current release of its CID.
type release struct {
	timer *time.Timer
}

// Open opens the store in dir, creating dir/blobs and dir/pending if
// needed. dir/pending is left as it is: see SweepPending. A dir/tmp, where
// earlier versions wrote Puts in progress, holds only uploads a crash
// interrupted, never acknowledged: it is removed.
func Open(dir string) (*Store, error) {
	s := &Store{
		blobs:     filepath.Join(dir, "blobs"),
		pending:   filepath.Join(dir, "pending"),
		releases:  make(map[CID]*release),
		leftovers: make(map[string]bool),
	}
	for _, d := range []string{s.blobs, s.pending} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("blobstore: open: %w", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("blobstore: open: clean tmp: %w", err)
	}
	ids, err := s.Pending()
	if err != nil {
		return nil, fmt.Errorf("blobstore: open: %w", err)
	}
	for _, id := range ids {
		s.leftovers[id] = true
	}
	return s, nil
}

// Put stores what r yields and returns its CID and length: Stage, Seal
// and Discard in one call, for a caller that may wait for the hash. The
// limit and ctx rules are Stage's; whenever Put fails nothing is stored.
//
// Putting a blob the store already has is not an error (the content is the
// same); it cancels a pending Release of that CID, since someone needs the
// blob again.
func (s *Store) Put(ctx context.Context, r io.Reader, limit int64) (CID, int64, error) {
	id, n, err := s.Stage(ctx, r, limit)
	if err != nil {
		return CID{}, 0, err
	}
	defer s.Discard(id)
	c, err := s.Seal(ctx, id)
	if err != nil {
		return CID{}, 0, err
	}
	return c, n, nil
}

// syncDir fsyncs a directory so the names it holds are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open opens the blob c for reading and returns it with its size. The
// caller closes the file. A missing blob is an error wrapping ErrNotFound.
// An open file stays readable even if the blob is removed meanwhile.
func (s *Store) Open(c CID) (*os.File, int64, error) {
	f, err := os.Open(s.Path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, c)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blobstore: open %s: %w", c, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("blobstore: open %s: %w", c, err)
	}
	return f, fi.Size(), nil
}

// Has reports whether the store holds the blob c.
func (s *Store) Has(c CID) bool {
	_, err := os.Stat(s.Path(c))
	return err == nil
}

// Remove deletes the blob c now and cancels its pending release, if any.
// Removing a blob the store does not have is not an error.
func (s *Store) Remove(c CID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelLocked(c)
	if err := os.Remove(s.Path(c)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore: remove %s: %w", c, err)
	}
	return nil
}

// Path returns the file name of the blob c, whether or not it exists.
func (s *Store) Path(c CID) string {
	return filepath.Join(s.blobs, c.String())
}

// List returns the CIDs of all stored blobs, in the order of their string
// forms. Files in the blobs directory that are not named by a CID are
// skipped.
func (s *Store) List() ([]CID, error) {
	entries, err := os.ReadDir(s.blobs)
	if err != nil {
		return nil, fmt.Errorf("blobstore: list: %w", err)
	}
	cids := make([]CID, 0, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if c, err := ParseCID(e.Name()); err == nil {
			cids = append(cids, c)
		}
	}
	return cids, nil
}

// Release schedules the removal of blob c once after has passed: the
// retention period after the storage backend reported the upload done. It
// arms one timer per call; a later Release of the same CID replaces the
// pending one, and Keep, Put, Seal or Remove of that CID cancels it.
//
// The schedule lives in memory only. After a restart the caller must issue
// Release again for every blob it still tracks, and can use List to find
// (and Remove) blobs it no longer tracks. Release after Close does nothing.
//
// A removal that fails when the timer fires is not retried; the blob is
// left for that start-up reconciliation.
func (s *Store) Release(c CID, after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.cancelLocked(c)
	rel := &release{}
	rel.timer = time.AfterFunc(after, func() { s.expire(c, rel) })
	s.releases[c] = rel
}

// Keep cancels the pending release of blob c, if any: someone needs the
// blob again. The blob itself is not touched.
func (s *Store) Keep(c CID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelLocked(c)
}

// expire runs on rel's timer: it removes c unless rel was cancelled or
// replaced meanwhile (a timer that already fired cannot be stopped, so the
// check happens here, under the lock).
func (s *Store) expire(c CID, rel *release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.releases[c] != rel {
		return
	}
	delete(s.releases, c)
	_ = os.Remove(s.Path(c)) // see Release: failures wait for reconciliation
}

// cancelLocked stops c's pending release. s.mu must be held.
func (s *Store) cancelLocked(c CID) {
	if rel := s.releases[c]; rel != nil {
		rel.timer.Stop()
		delete(s.releases, c)
	}
}

// Close cancels every pending release; no blob is removed by a release
// after Close returns. Blobs stay on disk, and Put, Open and Remove keep
// working. Close always returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c, rel := range s.releases {
		rel.timer.Stop()
		delete(s.releases, c)
	}
	return nil
}
