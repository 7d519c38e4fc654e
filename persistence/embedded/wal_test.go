package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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
	m.checkGets(t, s)
	listed := map[string]bool{}
	last := ""
	err := s.Live(context.Background(), sluice.KindContract, func(r sluice.Record) error {
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

// checkGets compares the store's Get of every record of the model, and
// nothing else (the store may hold other records).
func (m model) checkGets(t *testing.T, s *embedded.Store) {
	t.Helper()
	for id, want := range m {
		got, err := s.Get(context.Background(), want.Kind, id)
		if err != nil {
			t.Fatalf("Get(%q): %v", id, err)
		}
		if got.Version != want.Version || got.Live != want.Live || got.Owner != want.Owner || !bytes.Equal(got.State, want.State) {
			t.Fatalf("Get(%q): got version %d live %v state %.40q, want version %d live %v state %.40q",
				id, got.Version, got.Live, got.State, want.Version, want.Live, want.State)
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
	// Bounded: a Write that waits for a checkpoint that never ends fails
	// the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Write(ctx, recs); err != nil {
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

// A log write that fails is not acknowledged, and the log goes on: a full
// disk that gets space back does not stop the store.
func TestFailedLogWriteIsNotAcknowledged(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ok := contractRec("ok", 1, true)
	write(t, s, ok)
	s.BreakLog()
	if err := s.Write(context.Background(), []sluice.Record{contractRec("lost", 1, true)}); err == nil {
		t.Fatal("Write on a broken log: got nil error")
	}
	if _, err := s.Get(context.Background(), sluice.KindContract, "lost"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("Get(lost): got %v, want not found: its write failed", err)
	}
	model{"ok": ok}.check(t, s)
	s.Close() // the broken file's Close fails too
	s = open(t, dir)
	defer s.Close()
	model{"ok": ok}.check(t, s)
	write(t, s, contractRec("later", 1, true))
}

// A full disk that gets space back does not stop the store: the half
// frame a failed write left is overwritten or ends the log, like a torn
// write.
func TestFullDiskIsNotSticky(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	m := model{}
	first := contractRec("first", 1, true)
	write(t, s, first)
	m.write(first)
	restore := embedded.FailWrites()
	failed := contractRec("failed", 1, true)
	failed.State = bytes.Repeat([]byte{'z'}, 3000) // longer than what follows
	err := s.Write(context.Background(), []sluice.Record{failed})
	restore()
	if err == nil {
		t.Fatal("Write on a full disk: got nil error")
	}
	second := contractRec("second", 1, true)
	write(t, s, second)
	m.write(second)
	m.check(t, s)
	s.Crash()
	s = open(t, dir)
	defer s.Close()
	m.check(t, s)
}

// A failed sync leaves what the file holds unknown: no later write is
// acknowledged, and Close says the log must be kept.
func TestFailedSyncStopsWrites(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ok := contractRec("ok", 1, true)
	write(t, s, ok)
	restore := embedded.FailSyncs()
	err := s.Write(context.Background(), []sluice.Record{contractRec("unsure", 1, true)})
	restore()
	if err == nil {
		t.Fatal("Write whose sync failed: got nil error")
	}
	err = s.Write(context.Background(), []sluice.Record{contractRec("later", 1, true)})
	if !errors.Is(err, sluice.ErrUnavailable) {
		t.Fatalf("Write after a failed sync: got %v, want ErrUnavailable", err)
	}
	model{"ok": ok}.check(t, s)
	if err := s.Close(); !errors.Is(err, sluice.ErrUnavailable) || !strings.Contains(err.Error(), "sluice.wal") {
		t.Errorf("Close after a failed sync: got %v, want it to say the log files must be kept", err)
	}
	// The frame whose sync failed may or may not be back: it was never
	// acknowledged either way. The later write never reached the log.
	s = open(t, dir)
	defer s.Close()
	model{"ok": ok}.checkGets(t, s)
	if _, err := s.Get(context.Background(), sluice.KindContract, "later"); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("Get(later): got %v, want not found", err)
	}
}

// seedCorrupt puts a value no version can be read from into the bbolt
// file, as a bad disk block would.
func seedCorrupt(t *testing.T, dir, id string) {
	t.Helper()
	s := open(t, dir)
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, embedded.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("snap/%d/live", sluice.KindContract)))
		if err != nil {
			return err
		}
		return b.Put([]byte(id), []byte{0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// One unreadable value in bbolt does not stop checkpoints, nor Open after
// a crash: the logged record replaces it.
func TestCorruptStoredValueIsReplaced(t *testing.T) {
	dir := t.TempDir()
	seedCorrupt(t, dir, "bad")
	s := openSegmented(t, dir, smallSegment)
	m := model{}
	fixed := contractRec("bad", 5, true)
	write(t, s, fixed)
	m.write(fixed)
	waitCheckpointed(t, s, "bad")
	for i := range 200 { // through many more checkpoints
		r := contractRec(fmt.Sprintf("c%d", i), 1, true)
		write(t, s, r)
		m.write(r)
	}
	s.Crash()
	s = openSegmented(t, dir, smallSegment)
	defer s.Close()
	m.checkGets(t, s)
}

// Close does not wait for ever behind a Write that waits for a checkpoint
// that keeps failing.
func TestCloseIsNotHeldUpByAFailingCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := openSegmented(t, dir, smallSegment)
	write(t, s, contractRec("first", 1, true))
	// Checkpoints fail from now on: bbolt's file is closed under them.
	s.BreakBolt()
	writing := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := s.Write(context.Background(), []sluice.Record{contractRec(fmt.Sprint("c", i), 1, true)}); err != nil {
				writing <- err
				return
			}
		}
	}()
	// The writer fills a segment, then waits in the rotation.
	deadline := time.Now().Add(10 * time.Second)
	for !s.WaitingForCheckpoint() {
		if time.Now().After(deadline) {
			t.Fatal("no Write waits for the failing checkpoint after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, sluice.ErrUnavailable) {
			t.Errorf("Close with a failed checkpoint: got %v, want ErrUnavailable saying the log must be kept", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close still blocked after 10 s")
	}
	if err := <-writing; !errors.Is(err, sluice.ErrUnavailable) {
		t.Errorf("the waiting Write: got %v, want ErrUnavailable", err)
	}
}

// A segment that one big frame took past its size is cut back to it when
// it is reset for its next turn.
func TestBigFrameSegmentIsCutBack(t *testing.T) {
	dir := t.TempDir()
	s := openSegmented(t, dir, smallSegment)
	defer s.Close()
	big := contractRec("big", 1, true)
	big.State = bytes.Repeat([]byte{'x'}, 4*smallSegment)
	write(t, s, big)
	seg := filepath.Join(dir, "sluice.wal.0")
	if got := fileSize(t, seg); got <= smallSegment {
		t.Fatalf("segment 0 after a big frame: %d bytes, want more than %d", got, smallSegment)
	}
	waitCheckpointed(t, s, "big")
	for i := 0; fileSize(t, seg) > smallSegment; i++ {
		if i > 10_000 {
			t.Fatalf("segment 0 still %d bytes after many rotations, want at most %d", fileSize(t, seg), smallSegment)
		}
		write(t, s, contractRec(fmt.Sprintf("f%d", i), 1, true))
	}
	model{"big": big}.checkGets(t, s)
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
