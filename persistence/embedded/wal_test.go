package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/persistence/embedded"
	"github.com/sluicehq/sluice/persistence/storetest"
)

// smallSegment makes the log switch segments, and checkpoint, every few
// writes.
const smallSegment = 8 << 10

func openSegmented(t *testing.T, dir string, segBytes int64) *embedded.Store {
	t.Helper()
	s, err := embedded.OpenSegmented(dir, zaptest.NewLogger(t), segBytes)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

// The whole suite again with checkpoints in the middle of every test, so
// that records are read back from the log, from bbolt and from both.
func TestConformanceSmallSegments(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() storetest.Store {
		dir := t.TempDir()
		return func() storetest.Store { return openSegmented(t, dir, smallSegment) }
	})
}

// model is what the store should hold: the rules of actors.Store applied
// to every acknowledged write.
type model map[string]sluice.Record

func (m model) write(recs ...sluice.Record) {
	for _, r := range recs {
		if old, ok := m[r.ID]; ok && old.Version >= r.Version {
			continue
		}
		m[r.ID] = r
	}
}

// check compares the store's Get and Live with the model.
func (m model) check(t *testing.T, s *embedded.Store) {
	t.Helper()
	ctx := context.Background()
	for id, want := range m {
		got, err := s.Get(ctx, want.Kind, id)
		if err != nil {
			t.Fatalf("Get(%q): %v", id, err)
		}
		if got.Version != want.Version || got.Live != want.Live || got.Owner != want.Owner || !bytes.Equal(got.State, want.State) {
			t.Fatalf("Get(%q): got version %d live %v state %q, want version %d live %v state %q",
				id, got.Version, got.Live, got.State, want.Version, want.Live, want.State)
		}
	}
	listed := map[string]bool{}
	last := ""
	err := s.Live(ctx, sluice.KindContract, func(r sluice.Record) error {
		if listed[r.ID] {
			return fmt.Errorf("%q listed twice", r.ID)
		}
		if r.ID <= last {
			return fmt.Errorf("%q listed after %q: want id order", r.ID, last)
		}
		last = r.ID
		listed[r.ID] = true
		want, ok := m[r.ID]
		if !ok || !want.Live || want.Version != r.Version || !bytes.Equal(want.State, r.State) {
			return fmt.Errorf("Live listed %q at version %d, want %+v", r.ID, r.Version, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Live: %v", err)
	}
	for id, want := range m {
		if want.Live && !listed[id] {
			t.Fatalf("Live: %q (version %d) missing", id, want.Version)
		}
	}
}

func contractRec(id string, version uint64, live bool) sluice.Record {
	return sluice.Record{
		Kind: sluice.KindContract, ID: id, Owner: "farmer", Version: version, Live: live,
		State: fmt.Appendf(nil, `{"id":%q,"v":%d}`, id, version),
	}
}

// randomWrites writes n batches of updates, archives, revivals and stale
// versions over a small set of ids, and records what was acknowledged.
func randomWrites(t *testing.T, s *embedded.Store, m model, rng *rand.Rand, n int) {
	t.Helper()
	for range n {
		batch := make([]sluice.Record, 1+rng.IntN(6))
		for i := range batch {
			id := fmt.Sprintf("c%03d", rng.IntN(120))
			v := m[id].Version + 1
			if rng.IntN(8) == 0 && v > 2 {
				v -= 2 // stale: must be ignored
			}
			batch[i] = contractRec(id, v, rng.IntN(5) != 0)
		}
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatalf("Write: %v", err)
		}
		m.write(batch...)
	}
}

// boltHas reads the bbolt file alone, without the log, and reports whether
// it holds the contract at the version.
func boltHas(t *testing.T, dir, id string, version uint64) bool {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, embedded.FileName), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open bbolt file: %v", err)
	}
	defer db.Close()
	found := false
	db.View(func(tx *bolt.Tx) error {
		for _, name := range []string{"snap/2/live", "snap/2/archive"} {
			if b := tx.Bucket([]byte(name)); b != nil {
				if v := b.Get([]byte(id)); v != nil {
					// format byte, then the version as a uvarint (one byte
					// for the small versions of these tests).
					found = len(v) > 1 && uint64(v[1]) == version
				}
			}
		}
		return nil
	})
	return found
}

func TestCrashKeepsWritesThatAreOnlyInTheLog(t *testing.T) {
	if sluice.KindContract != 2 {
		t.Fatalf("KindContract is %d: update the bucket names in boltHas", sluice.KindContract)
	}
	dir := t.TempDir()
	s := open(t, dir)
	m := model{}
	randomWrites(t, s, m, rand.New(rand.NewPCG(1, 1)), 300)
	m.check(t, s)
	s.Crash()

	// The default segment is far bigger than these writes: nothing was
	// checkpointed, so the bbolt file alone has none of them.
	for id, r := range m {
		if boltHas(t, dir, id, r.Version) {
			t.Fatalf("bbolt file has %q before any checkpoint: the test would not exercise the log", id)
		}
	}
	s = open(t, dir)
	m.check(t, s)
	// Open copied the log into bbolt; a clean Close leaves it all there.
	randomWrites(t, s, m, rand.New(rand.NewPCG(1, 2)), 100)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for id, r := range m {
		if !boltHas(t, dir, id, r.Version) {
			t.Fatalf("after Close, the bbolt file lacks %q at version %d", id, r.Version)
		}
	}
	s = open(t, dir)
	defer s.Close()
	m.check(t, s)
}

func TestTornFrameEndsTheLog(t *testing.T) {
	dir := t.TempDir()
	seg := filepath.Join(dir, "sluice.wal.0")
	s := open(t, dir)
	first, second := contractRec("first", 1, true), contractRec("second", 1, true)
	write(t, s, first)
	before := fileSize(t, seg)
	write(t, s, second)
	s.Crash()

	// The second frame was being written when the machine stopped: only
	// part of it reached the disk, then whatever the block held before.
	if err := os.Truncate(seg, before+10); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{0xA5}, 300))
	f.Close()

	s = open(t, dir)
	m := model{}
	m.write(first)
	m.check(t, s)
	if _, err := s.Get(context.Background(), sluice.KindContract, "second"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("Get(second): got %v, want not found: its frame was torn", err)
	}
	// The log goes on after the torn frame, and a later crash keeps
	// what came after it.
	third := contractRec("third", 1, true)
	write(t, s, third)
	s.Crash()
	s = open(t, dir)
	defer s.Close()
	m.write(third)
	m.check(t, s)
}

func TestFlippedByteEndsTheLog(t *testing.T) {
	dir := t.TempDir()
	seg := filepath.Join(dir, "sluice.wal.0")
	s := open(t, dir)
	first := contractRec("first", 1, true)
	write(t, s, first)
	at := fileSize(t, seg)
	write(t, s, contractRec("second", 1, true))
	s.Crash()

	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[at+20] ^= 0x40 // inside the second frame's payload
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	model{"first": first}.check(t, s)
	if _, err := s.Get(context.Background(), sluice.KindContract, "second"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("Get(second): got %v, want not found: its frame fails its crc", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func write(t *testing.T, s *embedded.Store, recs ...sluice.Record) {
	t.Helper()
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// waitCheckpointed writes filler until the record has left memory, that
// is until a checkpoint has copied it into bbolt.
func waitCheckpointed(t *testing.T, s *embedded.Store, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; s.Logged(sluice.KindContract, id); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%q still waits for a checkpoint after 10 s", id)
		}
		write(t, s, contractRec(fmt.Sprintf("filler-%d", i), 1, true))
	}
}

// A stale version logged after the newer one was checkpointed stays in the
// log and in memory until the next checkpoint, and is replayed after a
// crash; it must never win over bbolt's newer version.
func TestStaleVersionInTheLogDoesNotWin(t *testing.T) {
	dir := t.TempDir()
	s := openSegmented(t, dir, smallSegment)
	newer := contractRec("x", 5, true)
	write(t, s, newer)
	waitCheckpointed(t, s, "x")
	write(t, s, contractRec("x", 3, false))
	if !s.Logged(sluice.KindContract, "x") {
		t.Fatal("the stale write is not held in memory: the test would not exercise the merge")
	}
	check := func() {
		t.Helper()
		got, err := s.Get(context.Background(), sluice.KindContract, "x")
		if err != nil || got.Version != 5 || !got.Live {
			t.Fatalf("Get(x): got %+v, %v; want version 5, live", got, err)
		}
		found := false
		s.Live(context.Background(), sluice.KindContract, func(r sluice.Record) error {
			if r.ID == "x" {
				found = r.Version == 5
			}
			return nil
		})
		if !found {
			t.Fatal("Live: x missing at version 5")
		}
	}
	check()
	s.Crash()
	s = openSegmented(t, dir, smallSegment)
	defer s.Close()
	check()
}

// Writers, readers and checkpoints at once: no reader ever sees a record
// go back to an older version than one already acknowledged, Live never
// lists a record twice, and after a crash everything acknowledged is
// there.
func TestCheckpointsUnderConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	s := openSegmented(t, dir, smallSegment)
	const writers, ids, rounds = 4, 40, 60
	var (
		mu    sync.Mutex
		acked = model{}
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make(chan error, 16)
	)
	for w := range writers {
		wg.Go(func() {
			for v := uint64(1); v <= rounds; v++ {
				batch := make([]sluice.Record, 0, ids)
				for i := range ids {
					batch = append(batch, contractRec(fmt.Sprintf("w%d-%02d", w, i), v, v%7 != 0))
				}
				if err := s.Write(context.Background(), batch); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked.write(batch...)
				mu.Unlock()
			}
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			floor := map[string]uint64{}
			for id, r := range acked {
				floor[id] = r.Version
			}
			mu.Unlock()
			seen := map[string]bool{}
			err := s.Live(context.Background(), sluice.KindContract, func(r sluice.Record) error {
				if seen[r.ID] {
					return fmt.Errorf("Live listed %q twice", r.ID)
				}
				seen[r.ID] = true
				if r.Version < floor[r.ID] {
					return fmt.Errorf("Live: %q at version %d, after %d was acknowledged", r.ID, r.Version, floor[r.ID])
				}
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
			for id, v := range floor {
				got, err := s.Get(context.Background(), sluice.KindContract, id)
				if err != nil || got.Version < v {
					errs <- fmt.Errorf("Get(%q): got version %d (%v), after %d was acknowledged", id, got.Version, err, v)
					return
				}
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	acked.check(t, s)
	s.Crash()
	s = openSegmented(t, dir, smallSegment)
	defer s.Close()
	acked.check(t, s)
}

func TestFailedLogWriteStopsWrites(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ok := contractRec("ok", 1, true)
	write(t, s, ok)
	s.BreakLog()
	if err := s.Write(context.Background(), []sluice.Record{contractRec("lost", 1, true)}); err == nil {
		t.Fatal("Write on a broken log: got nil error")
	}
	// The file may now hold anything: nothing more is acknowledged.
	err := s.Write(context.Background(), []sluice.Record{contractRec("later", 1, true)})
	if !errors.Is(err, sluice.ErrUnavailable) {
		t.Fatalf("Write after a failed log write: got %v, want ErrUnavailable", err)
	}
	// Reads still answer from what was acknowledged.
	model{"ok": ok}.check(t, s)
	s.Close()
	s = open(t, dir)
	defer s.Close()
	model{"ok": ok}.check(t, s)
}

func TestRefusedBeforeTheLog(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	long := string(bytes.Repeat([]byte{'k'}, bolt.MaxKeySize+1))
	for _, r := range []sluice.Record{contractRec("", 1, true), contractRec(long, 1, true)} {
		err := s.Write(context.Background(), []sluice.Record{contractRec("fine", 1, true), r})
		if !errors.Is(err, sluice.ErrInvalid) {
			t.Errorf("Write of an id of %d bytes: got %v, want ErrInvalid", len(r.ID), err)
		}
	}
	if _, err := s.Get(context.Background(), sluice.KindContract, "fine"); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("Get(fine): got %v, want not found: its batch was refused", err)
	}
}
