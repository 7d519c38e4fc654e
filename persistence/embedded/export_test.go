package embedded

import (
	"errors"
	"os"
	"syscall"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// OpenSegmented opens a store whose log moves to the other segment, and
// checkpoints, whenever a segment passes segBytes: small values make the
// tests go through many checkpoints.
func OpenSegmented(dir string, log *zap.Logger, segBytes int64) (*Store, error) {
	return open(dir, log, segBytes)
}

// Crash stops the store the way a killed process stops: no final
// checkpoint, nothing more written; a checkpoint already under way
// finishes or not, as it would have before the kill.
func (s *Store) Crash() {
	s.quitter.Do(func() { close(s.quit) })
	s.wmu.Lock()
	s.closed = true
	// Drop a checkpoint that was handed over but not started.
	select {
	case <-s.jobs:
	default:
	}
	close(s.jobs)
	s.wmu.Unlock()
	<-s.stopped
	for _, g := range s.segs {
		g.f.Close()
	}
	s.db.Close()
}

// Logged reports whether the record is still held in memory, waiting for a
// checkpoint to copy it into bbolt (or in the middle of one).
func (s *Store) Logged(kind sluice.RecordKind, id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.logged(memKey{kind, id})
	return ok
}

// BreakLog closes the active segment's file under the store, so the next
// append fails as a failing disk would make it fail.
func (s *Store) BreakLog() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.segs[s.active].f.Close()
}

// FailSyncs makes every later log sync fail, as a failing disk would,
// until the returned func restores them.
func FailSyncs() (restore func()) {
	syncFile = func(*os.File) error { return errors.New("injected: sync failed") }
	return func() { syncFile = datasync }
}

// BreakBolt closes the bbolt file under the store, so every checkpoint
// fails from then on.
func (s *Store) BreakBolt() { s.db.Close() }

// WaitingForCheckpoint reports whether a Write is waiting in a rotation
// for the running checkpoint to finish.
func (s *Store) WaitingForCheckpoint() bool { return s.stalled.Load() }

// FailWrites makes every later log write put the first half of its bytes
// in the file and then fail with ENOSPC, as a disk filling up would, until
// the returned func restores them.
func FailWrites() (restore func()) {
	writeFile = func(f *os.File, b []byte, off int64) (int, error) {
		n, _ := f.WriteAt(b[:len(b)/2], off)
		return n, syscall.ENOSPC
	}
	return func() { writeFile = (*os.File).WriteAt }
}
