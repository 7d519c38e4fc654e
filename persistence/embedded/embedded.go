// Package embedded is the zero-setup snapshot store: one bbolt file in the
// data directory, pure Go, nothing to install. It behaves like
// persistence/postgres (persistence/storetest checks both); DECISION.md says
// why bbolt.
//
// Layout: one bucket per (kind, live|archive), named "snap/<kind>/live" and
// "snap/<kind>/archive". The key is the record id; the value is a small
// header followed by the state bytes:
//
//	format byte (1) | version uvarint | len(owner) uvarint | owner | state
//
// A record lives in exactly one of its kind's two buckets, so loading the
// live records at start-up never reads archived ones.
package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// Event names logged by this package.
const evOpened = "store.opened"

// Store is a snapshot store in one bbolt file. It implements actors.Store.
// It is safe for concurrent use; writes are serialised by bbolt (one
// writer at a time), reads run in parallel with them.
type Store struct {
	db  *bolt.DB
	log *zap.Logger
}

// Open opens (creating if needed) the store in dir/sluice.db, creating dir
// too. If another process has the file open, Open fails after two seconds
// instead of waiting forever.
func Open(dir string, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// bbolt's other defaults stay: NoFreelistSync (as etcd sets it) made
	// no measurable difference to batched writes here.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded store: %s is locked; data dir is in use by another sluice process? (%w)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded store: open %s: %w", path, err)
	}
	log.Info(evOpened, zap.String("path", path))
	return &Store{db: db, log: log}, nil
}

// Path is the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// bucketName names the bucket of a kind's live or archived records.
func bucketName(kind sluice.RecordKind, live bool) []byte {
	b := []byte("snap/")
	b = strconv.AppendUint(b, uint64(kind), 10)
	if live {
		return append(b, "/live"...)
	}
	return append(b, "/archive"...)
}

// Write commits recs in one fsync'd bbolt transaction: when it returns nil
// the records are on disk. A record whose version is not newer than the one
// stored (live or archived) is skipped; records are applied in order, so of
// several records with the same id the highest version wins. A record that
// changes its Live flag moves between its kind's live and archive buckets.
// ctx is only checked before starting: a bbolt commit cannot be interrupted.
func (s *Store) Write(ctx context.Context, recs []sluice.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		// Buckets of the kinds in this batch, created on first use.
		type pair struct{ live, archive *bolt.Bucket }
		buckets := map[sluice.RecordKind]pair{}
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
				p = pair{live, archive}
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
					return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
				}
				if stored >= r.Version {
					continue
				}
			}
			// bbolt keeps a reference to the value until commit: a fresh
			// buffer per record.
			if err := target.Put(key, encode(r)); err != nil {
				return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
			}
			if v != nil && !inTarget {
				if err := other.Delete(key); err != nil {
					return fmt.Errorf("%s %q: %w", r.Kind, r.ID, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded store: write %d records: %w", len(recs), classify(err))
	}
	return nil
}

// Live calls fn for every live record of kind, in id order, reading from
// one consistent snapshot of the file.
//
// fn runs inside a bbolt read transaction: it must not call back into the
// store, nor wait for a Write to finish (a Write that has to grow the file
// waits for open read transactions, so either would deadlock). Records
// passed to fn are copies and may be kept.
func (s *Store) Live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(kind, true))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := decode(kind, k, v, true)
			if err != nil {
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded store: live %s: %w", kind, classify(err))
	}
	return nil
}

// Get returns the record, live or archived, or an error wrapping
// sluice.ErrNotFound.
func (s *Store) Get(ctx context.Context, kind sluice.RecordKind, id string) (sluice.Record, error) {
	if err := ctx.Err(); err != nil {
		return sluice.Record{}, err
	}
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
	if !found {
		return sluice.Record{}, fmt.Errorf("%s %q: %w", kind, id, sluice.ErrNotFound)
	}
	return r, nil
}

// Close closes the file. Calls on a closed store fail with an error
// wrapping sluice.ErrUnavailable.
func (s *Store) Close() error {
	return s.db.Close()
}

// classify marks a closed database as unavailable; other errors (a full
// disk, a corrupt value, a bug) pass through unclassified.
func classify(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", sluice.ErrUnavailable, err)
	}
	return err
}

// encode builds the stored value of r.
func encode(r sluice.Record) []byte {
	v := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(r.Owner)+len(r.State))
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
