package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
)

// recordingStore is a test double for a BatchWriter: it records every batch
// it is given, can hold writes at a gate, and can fail chosen calls.
type recordingStore struct {
	// gate, if set, holds every Write until it is closed.
	gate chan struct{}
	// fail, if set, gives the result of the call-th Write (0-based).
	fail func(call int) error
	// waitCtx makes Write block until its ctx ends (to test Timeout).
	waitCtx bool

	mu      sync.Mutex
	batches [][]sluice.Record
}

func (s *recordingStore) Write(ctx context.Context, recs []sluice.Record) error {
	s.mu.Lock()
	call := len(s.batches)
	s.batches = append(s.batches, slices.Clone(recs))
	s.mu.Unlock()
	if s.gate != nil {
		<-s.gate
	}
	if s.waitCtx {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.fail != nil {
		return s.fail(call)
	}
	return nil
}

func (s *recordingStore) written() [][]sluice.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

func rec(id string) sluice.Record {
	return sluice.Record{Kind: sluice.KindContract, ID: id, Version: 1, Live: true, State: []byte(id)}
}

// commitAsync runs Commit on its own goroutine and returns where its result
// will arrive.
func commitAsync(ctx context.Context, w *Writer, recs ...sluice.Record) <-chan error {
	res := make(chan error, 1)
	go func() { res <- w.Commit(ctx, recs...) }()
	return res
}

func TestGroupCommitGroups(t *testing.T) {
	for _, flushers := range []int{1, 2} {
		t.Run(fmt.Sprintf("flushers=%d", flushers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &recordingStore{gate: make(chan struct{})}
				w := NewWriter(store, WriterOptions{Flushers: flushers})
				defer w.Close()
				ctx := context.Background()

				first := commitAsync(ctx, w, rec("first"))
				synctest.Wait() // the first batch is now held in Write
				var results []<-chan error
				for i := range 100 {
					results = append(results, commitAsync(ctx, w, rec(fmt.Sprintf("r%d", i))))
				}
				synctest.Wait() // all 100 are queued (or held in a second Write)
				close(store.gate)

				if err := <-first; err != nil {
					t.Fatalf("first commit: got %v, want nil", err)
				}
				for _, r := range results {
					if err := <-r; err != nil {
						t.Fatalf("commit: got %v, want nil", err)
					}
				}
				batches := store.written()
				rows := 0
				for _, b := range batches {
					rows += len(b)
				}
				if rows != 101 {
					t.Errorf("rows written: got %d, want 101", rows)
				}
				// The first Write holds one record; everything that arrived
				// while it was in flight shares at most `flushers` more.
				if got, want := len(batches), 1+flushers; got > want {
					t.Errorf("batches: got %d, want at most %d", got, want)
				}
				if flushers == 1 && len(batches) == 2 && len(batches[1]) != 100 {
					t.Errorf("second batch: got %d rows, want 100", len(batches[1]))
				}
			})
		})
	}
}

func TestCallerRecordsNeverSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &recordingStore{gate: make(chan struct{})}
		w := NewWriter(store, WriterOptions{MaxBatch: 10, Flushers: 1})
		defer w.Close()
		ctx := context.Background()

		first := commitAsync(ctx, w, rec("first"))
		synctest.Wait()
		var results []<-chan error
		for c := range 20 { // 20 callers of 3 records: at most 3 callers fit in 10 rows
			results = append(results, commitAsync(ctx, w,
				rec(fmt.Sprintf("c%d-0", c)), rec(fmt.Sprintf("c%d-1", c)), rec(fmt.Sprintf("c%d-2", c))))
		}
		var big []sluice.Record
		for i := range 25 { // larger than MaxBatch: written whole, alone
			big = append(big, rec(fmt.Sprintf("big-%d", i)))
		}
		synctest.Wait()
		results = append(results, commitAsync(ctx, w, big...))
		synctest.Wait()
		close(store.gate)

		for _, r := range append(results, first) {
			if err := <-r; err != nil {
				t.Fatalf("commit: got %v, want nil", err)
			}
		}
		batchOf := map[string]int{} // caller prefix -> batch index
		for i, b := range store.written() {
			if len(b) > 10 && !(len(b) == 25 && b[0].ID == "big-0") {
				t.Errorf("batch %d: got %d rows, want at most 10", i, len(b))
			}
			for _, r := range b {
				caller, _, _ := cut(r.ID)
				if j, ok := batchOf[caller]; ok && j != i {
					t.Errorf("caller %s: records in batches %d and %d, want one batch", caller, j, i)
				}
				batchOf[caller] = i
			}
		}
		if len(batchOf) != 22 {
			t.Errorf("callers written: got %d, want 22", len(batchOf))
		}
	})
}

// cut splits "c3-1" into caller "c3"; ids without a dash are their own caller.
func cut(id string) (caller, rest string, ok bool) {
	for i := range len(id) {
		if id[i] == '-' {
			return id[:i], id[i+1:], true
		}
	}
	return id, "", false
}

func TestErrorGoesToThatBatchOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := fmt.Errorf("%w: boom", sluice.ErrUnavailable) // the store failed
		store := &recordingStore{
			gate: make(chan struct{}),
			fail: func(call int) error {
				if call == 1 {
					return boom
				}
				return nil
			},
		}
		w := NewWriter(store, WriterOptions{Flushers: 1})
		defer w.Close()
		ctx := context.Background()

		first := commitAsync(ctx, w, rec("first")) // batch 0: succeeds
		synctest.Wait()
		var failing []<-chan error
		for i := range 10 { // batch 1: fails
			failing = append(failing, commitAsync(ctx, w, rec(fmt.Sprintf("f%d", i))))
		}
		synctest.Wait()
		close(store.gate)

		if err := <-first; err != nil {
			t.Errorf("caller of batch 0: got %v, want nil", err)
		}
		for _, r := range failing {
			if err := <-r; !errors.Is(err, boom) {
				t.Errorf("caller of batch 1: got %v, want %v", err, boom)
			}
		}
		if err := w.Commit(ctx, rec("later")); err != nil { // batch 2: succeeds
			t.Errorf("caller of batch 2: got %v, want nil", err)
		}
		if got := len(store.written()); got != 3 {
			t.Errorf("batches: got %d, want 3", got)
		}
	})
}

// A store that refuses one caller's records (not failing, as when it is
// unavailable) fails that caller only: the others of its batch are
// written on their own.
func TestRefusedRecordsFailTheirCallerOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refused := fmt.Errorf("%w: key too long", sluice.ErrInvalid)
		store := &recordingStore{gate: make(chan struct{})}
		store.fail = func(call int) error {
			store.mu.Lock()
			defer store.mu.Unlock()
			for _, r := range store.batches[call] {
				if r.ID == "bad" {
					return refused
				}
			}
			return nil
		}
		w := NewWriter(store, WriterOptions{Flushers: 1})
		defer w.Close()
		ctx := context.Background()
		first := commitAsync(ctx, w, rec("first")) // holds the flusher at the gate
		synctest.Wait()
		var good []<-chan error
		for i := range 5 {
			good = append(good, commitAsync(ctx, w, rec(fmt.Sprintf("g%d", i))))
		}
		bad := commitAsync(ctx, w, rec("ok-with-bad"), rec("bad"))
		for i := range 5 {
			good = append(good, commitAsync(ctx, w, rec(fmt.Sprintf("h%d", i))))
		}
		synctest.Wait()
		close(store.gate)
		if err := <-first; err != nil {
			t.Fatalf("first: %v", err)
		}
		for i, r := range good {
			if err := <-r; err != nil {
				t.Errorf("caller %d, batched with refused records: got %v, want nil", i, err)
			}
		}
		if err := <-bad; !errors.Is(err, refused) {
			t.Errorf("caller of the refused record: got %v, want %v", err, refused)
		}
		if got := len(store.written()); got != 1+1+11 {
			t.Errorf("store writes: got %d, want 13 (the first, the refused batch, each of its 11 callers)", got)
		}
	})
}

func TestCloseFlushesThenRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &recordingStore{gate: make(chan struct{})}
		w := NewWriter(store, WriterOptions{Flushers: 1})
		ctx := context.Background()

		inFlight := commitAsync(ctx, w, rec("a"))
		synctest.Wait()
		queued := []<-chan error{commitAsync(ctx, w, rec("b")), commitAsync(ctx, w, rec("c"))}
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- w.Close() }()
		synctest.Wait() // Close has stopped accepting and waits for the flusher

		if err := w.Commit(ctx, rec("d")); !errors.Is(err, sluice.ErrUnavailable) {
			t.Errorf("Commit after Close: got %v, want ErrUnavailable", err)
		}
		select {
		case err := <-closed:
			t.Fatalf("Close returned %v before the queue was flushed", err)
		default:
		}
		close(store.gate)
		if err := <-closed; err != nil {
			t.Errorf("Close: got %v, want nil", err)
		}
		for _, r := range append(queued, inFlight) {
			if err := <-r; err != nil {
				t.Errorf("commit before Close: got %v, want nil", err)
			}
		}
		var ids []string
		for _, b := range store.written() {
			for _, r := range b {
				ids = append(ids, r.ID)
			}
		}
		slices.Sort(ids)
		if want := []string{"a", "b", "c"}; !slices.Equal(ids, want) {
			t.Errorf("written: got %v, want %v", ids, want)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close: got %v, want nil", err)
		}
	})
}

func TestCommitCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &recordingStore{gate: make(chan struct{})}
		w := NewWriter(store, WriterOptions{Flushers: 1})
		defer w.Close()

		done, cancel := context.WithCancel(context.Background())
		cancel()
		if err := w.Commit(done, rec("never")); !errors.Is(err, context.Canceled) {
			t.Errorf("Commit with ended ctx: got %v, want context.Canceled", err)
		}

		inFlight := commitAsync(context.Background(), w, rec("a"))
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		waiting := commitAsync(ctx, w, rec("b"))
		synctest.Wait()
		cancel()
		if err := <-waiting; !errors.Is(err, context.Canceled) { // while "a" is still held
			t.Errorf("cancelled Commit: got %v, want context.Canceled", err)
		}
		close(store.gate)
		if err := <-inFlight; err != nil {
			t.Errorf("other Commit: got %v, want nil", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// "b" was cancelled before its batch started, so it was dropped.
		for _, b := range store.written() {
			for _, r := range b {
				if r.ID != "a" {
					t.Errorf("written: got %q, want only %q", r.ID, "a")
				}
			}
		}
	})
}

// CommitBy drops records whose batch has not started by the deadline, and
// once their batch has started returns its outcome, deadline or not.
func TestCommitBy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &recordingStore{gate: make(chan struct{})}
		w := NewWriter(store, WriterOptions{Flushers: 1})
		defer w.Close()

		if err := w.CommitBy(time.Now(), rec("never")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CommitBy at its deadline: got %v, want context.DeadlineExceeded", err)
		}

		by := time.Now().Add(time.Second)
		commitBy := func(id string) <-chan error {
			res := make(chan error, 1)
			go func() { res <- w.CommitBy(by, rec(id)) }()
			return res
		}
		inFlight := commitBy("a") // its batch starts at once and is held
		synctest.Wait()
		waiting := commitBy("b") // queued behind it
		synctest.Wait()
		time.Sleep(2 * time.Second) // both deadlines pass, "a" is still held
		select {
		case err := <-inFlight:
			t.Fatalf("CommitBy returned %v while its write was still held", err)
		case err := <-waiting:
			t.Fatalf("queued CommitBy returned %v before any batch ended", err)
		default:
		}
		close(store.gate)
		if err := <-inFlight; err != nil {
			t.Errorf("CommitBy whose batch started in time: got %v, want nil (written)", err)
		}
		if err := <-waiting; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CommitBy whose batch had not started by its deadline: got %v, want context.DeadlineExceeded", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := store.written(); len(got) != 1 || len(got[0]) != 1 || got[0][0].ID != "a" {
			t.Errorf("written: got %v, want one batch of %q", got, "a")
		}
	})
}

func TestBatchTimeoutAndObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type observed struct {
			rows int
			took time.Duration
			err  error
		}
		var seen []observed
		store := &recordingStore{waitCtx: true}
		w := NewWriter(store, WriterOptions{
			Timeout: 3 * time.Second,
			Observe: func(rows int, took time.Duration, err error) { seen = append(seen, observed{rows, took, err}) },
		})
		err := w.Commit(context.Background(), rec("a"), rec("b"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Commit: got %v, want context.DeadlineExceeded", err)
		}
		w.Close()
		if len(seen) != 1 || seen[0].rows != 2 || seen[0].took != 3*time.Second || !errors.Is(seen[0].err, context.DeadlineExceeded) {
			t.Errorf("observed: got %+v, want one batch of 2 rows taking 3s with DeadlineExceeded", seen)
		}
	})
}

// TestManyCallers runs real goroutines without a bubble, for the race
// detector: every record is written exactly once and no caller is split.
func TestManyCallers(t *testing.T) {
	store := &recordingStore{}
	w := NewWriter(store, WriterOptions{MaxBatch: 64, Flushers: 3})
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for i := range 20 {
				err := w.Commit(context.Background(),
					rec(fmt.Sprintf("g%d.%d-0", g, i)), rec(fmt.Sprintf("g%d.%d-1", g, i)))
				if err != nil {
					t.Errorf("Commit: got %v, want nil", err)
				}
			}
		})
	}
	wg.Wait()
	w.Close()
	seen := map[string]int{}
	batchOf := map[string]int{}
	for i, b := range store.written() {
		for _, r := range b {
			seen[r.ID]++
			caller, _, _ := cut(r.ID)
			if j, ok := batchOf[caller]; ok && j != i {
				t.Errorf("caller %s split across batches %d and %d", caller, j, i)
			}
			batchOf[caller] = i
		}
	}
	if len(seen) != 50*20*2 {
		t.Errorf("distinct records: got %d, want %d", len(seen), 50*20*2)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("record %s written %d times, want 1", id, n)
		}
	}
}

// TestEnqueue covers enqueue.go: records queued without waiting are written
// with the next batch (so by Close), failures reach only Observe, and
// records enqueued after Close are dropped.
func TestEnqueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		var failed []int
		store := &recordingStore{
			gate: make(chan struct{}),
			fail: func(call int) error {
				if call == 1 {
					return boom
				}
				return nil
			},
		}
		w := NewWriter(store, WriterOptions{
			Flushers: 1,
			Observe: func(rows int, _ time.Duration, err error) {
				if err != nil {
					failed = append(failed, rows)
				}
			},
		})
		held := commitAsync(context.Background(), w, rec("held")) // batch 0
		synctest.Wait()
		w.Enqueue(rec("e1"), rec("e2")) // batch 1: fails
		w.Enqueue()                     // nothing
		synctest.Wait()
		close(store.gate)
		if err := <-held; err != nil {
			t.Errorf("Commit: got %v, want nil", err)
		}
		synctest.Wait()      // batch 1 written and failed: e3 cannot join it
		w.Enqueue(rec("e3")) // batch 2 (or written by Close)
		w.Close()
		w.Enqueue(rec("dropped"))

		var ids []string
		for _, b := range store.written() {
			for _, r := range b {
				ids = append(ids, r.ID)
			}
		}
		if want := []string{"held", "e1", "e2", "e3"}; !slices.Equal(ids, want) {
			t.Errorf("written: got %v, want %v", ids, want)
		}
		if !slices.Equal(failed, []int{2}) {
			t.Errorf("failed batches seen by Observe: got %v, want one of 2 rows", failed)
		}
	})
}
