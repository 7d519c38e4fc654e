package blobstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice"
)

// ErrInvalidPending is wrapped when a pending id is not one Stage makes. It
// is of the domain kind sluice.ErrInvalid.
var ErrInvalidPending = fmt.Errorf("%w pending id", sluice.ErrInvalid)

// pendingIDLen is the length of a pending id: 16 random bytes in hex.
const pendingIDLen = 32

// Stage stores what r yields as a pending file, durably, without hashing
// it, and returns the file's pending id and length. The id names the file
// until Seal has made it a blob and the caller Discards it.
//
// Stage does not hash: the bytes go through one buffer into
// dir/pending/<id> with the same early write-out, and the file and the
// directory are fsynced before Stage returns, so an upload acknowledged
// after Stage survives a crash. Hashing, which on CPUs without the SHA
// extensions is slower than the disk, is left to Seal, off the path of the
// acknowledgement.
//
// A limit of zero or more is the most bytes accepted (a negative one means
// none): more is an error wrapping ErrTooLarge. ctx is checked before every
// read of r: cancelling it ends the copy with ctx's error (a read that
// blocks is not interrupted; the server unblocks a request body when the
// request's context ends). Whenever Stage fails nothing is kept.
func (s *Store) Stage(ctx context.Context, r io.Reader, limit int64) (string, int64, error) {
	var b [pendingIDLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", 0, fmt.Errorf("blobstore: stage: %w", err)
	}
	id := hex.EncodeToString(b[:])
	name := filepath.Join(s.pending, id)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: stage: %w", err)
	}
	kept := false
	defer func() {
		if !kept {
			_ = f.Close() // may already be closed; the error is of no use
			_ = os.Remove(name)
		}
	}()
	n, err := copyLimit(ctx, &writebackFile{f: f}, r, limit)
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: stage: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("blobstore: stage: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("blobstore: stage: %w", err)
	}
	if err := syncDir(s.pending); err != nil {
		return "", 0, fmt.Errorf("blobstore: stage: sync %s: %w", s.pending, err)
	}
	kept = true
	return id, n, nil
}

// Seal hashes the pending file id, makes it available as the blob of its
// CID and returns the CID. The pending file stays: the caller Discards it
// once it has recorded the CID, so that a crash in between finds the
// pending file again and Seal can run once more. Sealing again, or
// sealing bytes the store already holds as a blob, is not an error.
//
// The file is read back through one buffer (memory does not grow with its
// size), and ctx is checked before every read. The blob is a hard link to
// the pending file, not a copy: no byte is written again. The blobs
// directory is fsynced before Seal returns. Seal cancels a
// pending Release of the CID. A missing pending file is an error wrapping
// ErrNotFound.
func (s *Store) Seal(ctx context.Context, id string) (CID, error) {
	name, err := s.pendingPath(id)
	if err != nil {
		return CID{}, err
	}
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return CID{}, fmt.Errorf("blobstore: seal: pending %w: %s", sluice.ErrNotFound, id)
	}
	if err != nil {
		return CID{}, fmt.Errorf("blobstore: seal: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	buf := chunkPool.Get().(*[chunkSize]byte)
	defer chunkPool.Put(buf)
	for {
		if err := ctx.Err(); err != nil {
			return CID{}, err
		}
		k, err := f.Read(buf[:])
		h.Write(buf[:k])
		if err == io.EOF {
			break
		}
		if err != nil {
			return CID{}, fmt.Errorf("blobstore: seal %s: %w", id, err)
		}
	}
	var c CID
	h.Sum(c[:0])

	s.mu.Lock()
	err = os.Link(name, s.Path(c))
	if errors.Is(err, fs.ErrExist) {
		err = nil // the same bytes are already there: a second Seal, or a duplicate
	}
	if err == nil {
		s.cancelLocked(c)
	}
	s.mu.Unlock()
	if err != nil {
		return CID{}, fmt.Errorf("blobstore: seal %s: %w", id, err)
	}
	if err := syncDir(s.blobs); err != nil {
		return CID{}, fmt.Errorf("blobstore: seal: sync %s: %w", s.blobs, err)
	}
	return c, nil
}

// Discard removes the pending file id: after Seal once its CID is
// recorded, or when the upload it belongs to was refused. Discarding a
// pending file that is gone is not an error.
func (s *Store) Discard(id string) error {
	name, err := s.pendingPath(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.leftovers, id)
	s.mu.Unlock()
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore: discard %s: %w", id, err)
	}
	return nil
}

// SweepPending removes the pending files that were already there when the
// store was opened, except those keep claims: the caller, at start-up,
// keeps the ones its acknowledged uploads still need to seal, and the
// rest are leftovers of uploads that failed or crashed before being
// acknowledged. Files staged since Open are never touched, so a sweep
// cannot race with an upload in progress. A second sweep finds nothing.
// It returns how many files it removed.
func (s *Store) SweepPending(keep func(id string) bool) (int, error) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.leftovers))
	for id := range s.leftovers {
		ids = append(ids, id)
	}
	clear(s.leftovers)
	s.mu.Unlock()
	removed := 0
	var errs []error
	for _, id := range ids {
		if keep(id) {
			continue
		}
		if err := os.Remove(filepath.Join(s.pending, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("blobstore: sweep pending: %w", err)
	}
	return removed, nil
}

// Pending lists the ids of the pending files on disk, in no set order.
func (s *Store) Pending() ([]string, error) {
	entries, err := os.ReadDir(s.pending)
	if err != nil {
		return nil, fmt.Errorf("blobstore: pending: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if validPendingID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// pendingPath returns the file name of the pending id, refusing anything
// Stage would not have made (and so any path outside dir/pending).
func (s *Store) pendingPath(id string) (string, error) {
	if !validPendingID(id) {
		return "", fmt.Errorf("%w: %q", ErrInvalidPending, id)
	}
	return filepath.Join(s.pending, id), nil
}

func validPendingID(id string) bool {
	if len(id) != pendingIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
