// Package storetest is the conformance suite every snapshot store passes:
// persistence/postgres and persistence/embedded run it from their tests, so
// the two behave the same behind actors.Store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// Store has the method set of actors.Store (declared again here so the
// suite does not pull in the actor engine).
type Store interface {
	Write(ctx context.Context, recs []sluice.Record) error
	Live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error
	Get(ctx context.Context, kind sluice.RecordKind, id string) (sluice.Record, error)
	Close() error
}

// Purger is a store that can delete old archived records (both stores
// are; the suite checks it through this interface).
type Purger interface {
	PurgeArchived(ctx context.Context, kind sluice.RecordKind, before time.Time, limit int) (int, bool, error)
}

// Run runs the suite. newLocation is called once per subtest to make a
// fresh, empty location (a temp dir, a fresh schema) and returns an opener
// bound to it; the opener may be called again after Close to reopen the
// same data, and should fail the test if it cannot open. The suite closes
// every store it opens.
func Run(t *testing.T, newLocation func(t *testing.T) (open func() Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func() Store)
	}{
		{"WriteThenGet", testWriteThenGet},
		{"EmptyWrite", testEmptyWrite},
		{"VersionGuard/small", batchOf(1, testVersionGuard)},
		{"VersionGuard/big", batchOf(bigBatch, testVersionGuard)},
		{"AtomicBatch/small", batchOf(3, testAtomicBatch)},
		{"AtomicBatch/big", batchOf(bigBatch, testAtomicBatch)},
		{"DuplicateInBatch/small", batchOf(3, testDuplicateInBatch)},
		{"DuplicateInBatch/big", batchOf(bigBatch, testDuplicateInBatch)},
		{"OddValues/small", batchOf(4, testOddValues)},
		{"OddValues/big", batchOf(bigBatch, testOddValues)},
		{"LiveOnlyLiveOfKind", testLiveOnlyLiveOfKind},
		{"Archive", testArchive},
		{"Revive", testRevive},
		{"LiveStreamsMany", testLiveStreamsMany},
		{"LiveStopsOnFnError", testLiveStopsOnFnError},
		{"LiveCancelled", testLiveCancelled},
		{"GetMissing", testGetMissing},
		{"Reopen", testReopen},
		{"PurgeArchived", testPurgeArchived},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newLocation(t))
		})
	}
}

// bigBatch is larger than any store's small-batch path (the Postgres store
// switches from one multi-row statement to COPY at 512 rows), so the suite
// covers both paths.
const bigBatch = 1500

// batchOf runs a test with batches of n records.
func batchOf(n int, fn func(t *testing.T, open func() Store, n int)) func(t *testing.T, open func() Store) {
	return func(t *testing.T, open func() Store) { fn(t, open, n) }
}

// openStore opens a store and closes it when the test ends.
func openStore(t *testing.T, open func() Store) Store {
	t.Helper()
	s := open()
	t.Cleanup(func() { s.Close() })
	return s
}

func token(id string, version uint64, live bool, state string) sluice.Record {
	return sluice.Record{Kind: sluice.KindToken, ID: id, Version: version, Live: live, State: []byte(state)}
}

func contract(id, owner string, version uint64, live bool, state string) sluice.Record {
	return sluice.Record{Kind: sluice.KindContract, ID: id, Owner: owner, Version: version, Live: live, State: []byte(state)}
}

func write(t *testing.T, s Store, recs ...sluice.Record) {
	t.Helper()
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatalf("Write(%d records): %v", len(recs), err)
	}
}

func equal(a, b sluice.Record) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.Owner == b.Owner && a.Version == b.Version &&
		a.Live == b.Live && bytes.Equal(a.State, b.State)
}

func show(r sluice.Record) string {
	return fmt.Sprintf("{%s %q owner=%q v%d live=%t state=%q}", r.Kind, r.ID, r.Owner, r.Version, r.Live, r.State)
}

// wantGet checks that Get returns want.
func wantGet(t *testing.T, s Store, want sluice.Record) {
	t.Helper()
	got, err := s.Get(context.Background(), want.Kind, want.ID)
	if err != nil {
		t.Fatalf("Get(%s, %q): got error %v, want %s", want.Kind, want.ID, err, show(want))
	}
	if !equal(got, want) {
		t.Errorf("Get(%s, %q): got %s, want %s", want.Kind, want.ID, show(got), show(want))
	}
}

// wantMissing checks that Get finds nothing.
func wantMissing(t *testing.T, s Store, kind sluice.RecordKind, id string) {
	t.Helper()
	got, err := s.Get(context.Background(), kind, id)
	if !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("Get(%s, %q): got %s, %v, want ErrNotFound", kind, id, show(got), err)
	}
}

// live collects the live records of kind by id, failing on duplicates.
func live(t *testing.T, s Store, kind sluice.RecordKind) map[string]sluice.Record {
	t.Helper()
	got := map[string]sluice.Record{}
	err := s.Live(context.Background(), kind, func(r sluice.Record) error {
		if _, dup := got[r.ID]; dup {
			return fmt.Errorf("record %q listed twice", r.ID)
		}
		got[r.ID] = r
		return nil
	})
	if err != nil {
		t.Fatalf("Live(%s): %v", kind, err)
	}
	return got
}

// wantLive checks that Live(kind) lists exactly want.
func wantLive(t *testing.T, s Store, kind sluice.RecordKind, want ...sluice.Record) {
	t.Helper()
	got := live(t, s, kind)
	for _, w := range want {
		g, ok := got[w.ID]
		if !ok {
			t.Errorf("Live(%s): %q missing, want %s", kind, w.ID, show(w))
			continue
		}
		if !equal(g, w) {
			t.Errorf("Live(%s): got %s, want %s", kind, show(g), show(w))
		}
		delete(got, w.ID)
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		t.Errorf("Live(%s): got unexpected %s", kind, show(got[id]))
	}
}

func testWriteThenGet(t *testing.T, open func() Store) {
	s := openStore(t, open)
	tok := token("farmer-1", 1, true, "token state")
	con := contract("contract-1", "farmer-1", 7, true, "contract state")
	empty := contract("contract-2", "", 1, true, "") // empty owner and state
	write(t, s, tok, con, empty)
	wantGet(t, s, tok)
	wantGet(t, s, con)
	wantGet(t, s, empty)
	// The same id under the other kind is a different record.
	wantMissing(t, s, sluice.KindContract, "farmer-1")
}

func testEmptyWrite(t *testing.T, open func() Store) {
	s := openStore(t, open)
	if err := s.Write(context.Background(), nil); err != nil {
		t.Errorf("Write(nil): got %v, want nil", err)
	}
}

func testVersionGuard(t *testing.T, open func() Store, n int) {
	s := openStore(t, open)
	// pad fills the batch up to n records of other ids, to pick the
	// store's small- or big-batch path.
	pad := func(version uint64, recs ...sluice.Record) []sluice.Record {
		for i := len(recs); i < n; i++ {
			recs = append(recs, token(fmt.Sprintf("pad-%d", i), version, true, ""))
		}
		return recs
	}
	v5 := contract("c", "f1", 5, true, "five")
	write(t, s, pad(1, v5)...)

	write(t, s, pad(2, contract("c", "f2", 4, false, "four"))...) // older: ignored, not even archived
	wantGet(t, s, v5)
	write(t, s, pad(3, contract("c", "f2", 5, false, "five again"))...) // equal: ignored
	wantGet(t, s, v5)
	v6 := contract("c", "f3", 6, true, "six")
	write(t, s, pad(4, v6)...) // newer: wins
	wantGet(t, s, v6)
	wantLive(t, s, sluice.KindContract, v6)
}

func testAtomicBatch(t *testing.T, open func() Store, n int) {
	// A record with an empty id is refused by the backend itself (bbolt
	// needs a key, the Postgres table has a CHECK), halfway through the
	// transaction, so the batch must leave no trace.
	s := openStore(t, open)
	old := contract("existing", "f", 1, true, "old")
	write(t, s, old)

	batch := []sluice.Record{contract("new", "f", 1, true, "new"), contract("existing", "f", 2, false, "updated")}
	for i := len(batch); i < n-1; i++ {
		batch = append(batch, contract(fmt.Sprintf("new-%d", i), "f", 1, true, "new"))
	}
	batch = append(batch, contract("", "f", 1, true, "bad: empty id"))
	if err := s.Write(context.Background(), batch); err == nil {
		t.Fatalf("Write with an empty id: got nil error, want one")
	}
	wantMissing(t, s, sluice.KindContract, "new")
	wantMissing(t, s, sluice.KindContract, "new-5")
	wantGet(t, s, old)
	wantLive(t, s, sluice.KindContract, old)
}

func testDuplicateInBatch(t *testing.T, open func() Store, n int) {
	s := openStore(t, open)
	batch := []sluice.Record{
		contract("dup", "f", 3, true, "three"),
		contract("dup", "f", 7, false, "seven"),
		contract("dup", "f", 5, true, "five"),
	}
	for i := len(batch); i < n; i++ {
		batch = append(batch, contract(fmt.Sprintf("other-%d", i), "f", 1, true, ""))
	}
	write(t, s, batch...)
	wantGet(t, s, contract("dup", "f", 7, false, "seven"))
	if _, ok := live(t, s, sluice.KindContract)["dup"]; ok {
		t.Errorf("Live: got archived record %q, want it absent", "dup")
	}
}

// testOddValues writes values at the edges of what each column holds,
// through the small- or big-batch path, and reads them back unchanged.
func testOddValues(t *testing.T, open func() Store, n int) {
	s := openStore(t, open)
	every := make([]byte, 256*3)
	for i := range every {
		every[i] = byte(i)
	}
	odd := []sluice.Record{
		contract("ünïcødé-日本-🙂", "owner-ñ-€", 1, true, string(every)), // every byte value in the state
		{Kind: sluice.KindContract, ID: "nil-state", Owner: "", Version: math.MaxInt64, Live: false},
		token("t-quote\"'\\,{}", 2, true, "{\"json\": [1, 2]}"),
		{Kind: sluice.RecordKind(math.MaxUint8), ID: "x", Version: 3, Live: true, State: bytes.Repeat([]byte{0}, 70_000)},
	}
	batch := append([]sluice.Record(nil), odd...)
	for i := len(batch); i < n; i++ {
		batch = append(batch, contract(fmt.Sprintf("pad-%d", i), "f", uint64(i), i%2 == 0, strings.Repeat("s", i%97)))
	}
	write(t, s, batch...)
	odd[1].State = []byte{} // a nil state reads back empty
	for _, r := range odd {
		wantGet(t, s, r)
	}
	for _, r := range batch[len(odd):] {
		if r.Live {
			wantGet(t, s, r)
			break
		}
	}
	if _, ok := live(t, s, sluice.KindContract)["nil-state"]; ok {
		t.Errorf("Live: got the archived record %q", "nil-state")
	}
}

func testLiveOnlyLiveOfKind(t *testing.T, open func() Store) {
	s := openStore(t, open)
	t1 := token("t1", 1, true, "a")
	t2 := token("t2", 3, true, "b")
	t3 := token("t3", 2, false, "archived")
	c1 := contract("c1", "t1", 1, true, "c")
	c2 := contract("c2", "t2", 1, false, "archived")
	write(t, s, t1, t2, t3, c1, c2)
	wantLive(t, s, sluice.KindToken, t1, t2)
	wantLive(t, s, sluice.KindContract, c1)
	wantLive(t, s, sluice.RecordKind(99)) // a kind never written: empty, no error
}

func testArchive(t *testing.T, open func() Store) {
	s := openStore(t, open)
	write(t, s, contract("c", "f", 1, true, "active"), contract("stays", "f", 1, true, "x"))
	archived := contract("c", "f", 2, false, "expired")
	write(t, s, archived)
	wantLive(t, s, sluice.KindContract, contract("stays", "f", 1, true, "x"))
	wantGet(t, s, archived)
}

func testRevive(t *testing.T, open func() Store) {
	s := openStore(t, open)
	write(t, s, token("t", 1, true, "one"))
	write(t, s, token("t", 2, false, "two"))
	write(t, s, token("t", 2, true, "two again")) // not newer: stays archived
	wantLive(t, s, sluice.KindToken)
	revived := token("t", 3, true, "three")
	write(t, s, revived)
	wantGet(t, s, revived)
	wantLive(t, s, sluice.KindToken, revived)
}

func testLiveStreamsMany(t *testing.T, open func() Store) {
	const n, per = 20000, 4000
	s := openStore(t, open)
	state := bytes.Repeat([]byte{0xab}, 200)
	for b := 0; b < n; b += per {
		batch := make([]sluice.Record, 0, per)
		for i := b; i < b+per; i++ {
			batch = append(batch, sluice.Record{
				Kind: sluice.KindContract, ID: fmt.Sprintf("contract-%06d", i), Owner: "farmer",
				Version: 1, Live: true, State: state,
			})
		}
		write(t, s, batch...)
	}
	write(t, s, contract("contract-000001", "farmer", 2, false, "")) // one archived
	seen := make(map[string]bool, n)
	err := s.Live(context.Background(), sluice.KindContract, func(r sluice.Record) error {
		if seen[r.ID] {
			return fmt.Errorf("%q listed twice", r.ID)
		}
		seen[r.ID] = true
		if !bytes.Equal(r.State, state) || r.Owner != "farmer" || !r.Live {
			return fmt.Errorf("got %s, want its written state", show(r))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Live: %v", err)
	}
	if len(seen) != n-1 {
		t.Errorf("Live: got %d records, want %d", len(seen), n-1)
	}
}

func testLiveStopsOnFnError(t *testing.T, open func() Store) {
	s := openStore(t, open)
	var batch []sluice.Record
	for i := range 100 {
		batch = append(batch, token(fmt.Sprintf("t%d", i), 1, true, ""))
	}
	write(t, s, batch...)
	stop := errors.New("stop")
	calls := 0
	err := s.Live(context.Background(), sluice.KindToken, func(sluice.Record) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("Live: got %v, want the error from fn", err)
	}
	if calls != 3 {
		t.Errorf("fn calls: got %d, want 3", calls)
	}
	// The store is still usable after an interrupted scan.
	if got := len(live(t, s, sluice.KindToken)); got != 100 {
		t.Errorf("Live after a stopped scan: got %d records, want 100", got)
	}
}

func testLiveCancelled(t *testing.T, open func() Store) {
	s := openStore(t, open)
	var batch []sluice.Record
	for i := range 1000 {
		batch = append(batch, token(fmt.Sprintf("t%d", i), 1, true, ""))
	}
	write(t, s, batch...)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Live(ctx, sluice.KindToken, func(sluice.Record) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Live with a cancelled ctx: got %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err = s.Live(ctx, sluice.KindToken, func(sluice.Record) error {
		calls++
		cancel() // cancelled mid-scan
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Live cancelled mid-scan: got %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("fn calls after cancel: got %d, want 1", calls)
	}
}

func testGetMissing(t *testing.T, open func() Store) {
	s := openStore(t, open)
	wantMissing(t, s, sluice.KindToken, "nobody") // empty store
	write(t, s, token("somebody", 1, true, ""))
	wantMissing(t, s, sluice.KindToken, "nobody")
	wantMissing(t, s, sluice.KindContract, "somebody")
}

func testReopen(t *testing.T, open func() Store) {
	s := open()
	tok := token("t", 4, true, "token")
	gone := contract("gone", "t", 2, false, "archived")
	con := contract("c", "t", 1, true, "contract")
	write(t, s, tok, gone, con)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openStore(t, open)
	wantGet(t, s, tok)
	wantGet(t, s, gone)
	wantLive(t, s, sluice.KindToken, tok)
	wantLive(t, s, sluice.KindContract, con)
	// And it keeps its version guard across the reopen.
	write(t, s, token("t", 3, false, "older"))
	wantGet(t, s, tok)
}

// testPurgeArchived: archived records of the kind archived before the
// cut-off go, oldest first and about limit a call; live records, newer
// archived ones and other kinds stay, and a record made live again after
// it was archived stays live. Records are checkpointed by a reopen first
// (the embedded store purges only what its database file holds).
func testPurgeArchived(t *testing.T, open func() Store) {
	ctx := context.Background()
	s := open()
	live := contract("live", "f", 1, true, "running")
	tok := token("tok", 2, false, "deleted")
	write(t, s, live, contract("old1", "f", 2, false, "expired"), contract("revived", "f", 2, false, "expired"), tok)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	revived := contract("revived", "f", 3, true, "taken again")
	write(t, s, revived, contract("old2", "f", 2, false, "expired")) // archived after old1
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, open)
	p, ok := s.(Purger)
	if !ok {
		t.Fatalf("%T cannot purge archived records", s)
	}
	purge := func(before time.Time, limit int) int {
		t.Helper()
		n, _, err := p.PurgeArchived(ctx, sluice.KindContract, before, limit)
		if err != nil {
			t.Fatalf("PurgeArchived: %v", err)
		}
		return n
	}
	if n := purge(time.Now().Add(-time.Hour), 100); n != 0 {
		t.Fatalf("records archived in the last hour, purged with a cut-off an hour ago: %d, want 0", n)
	}
	wantGet(t, s, contract("old1", "f", 2, false, "expired"))
	after := time.Now().Add(time.Hour)
	if n := purge(after, 1); n != 1 {
		t.Fatalf("purged with limit 1: %d, want 1", n)
	}
	wantMissing(t, s, sluice.KindContract, "old1") // the oldest first
	wantGet(t, s, contract("old2", "f", 2, false, "expired"))
	total := 1
	for range 5 {
		total += purge(after, 100)
	}
	if total != 2 {
		t.Fatalf("purged in all: %d, want 2 (old1, old2)", total)
	}
	wantMissing(t, s, sluice.KindContract, "old1")
	wantMissing(t, s, sluice.KindContract, "old2")
	wantGet(t, s, revived)
	wantGet(t, s, live)
	wantGet(t, s, tok)
	wantLive(t, s, sluice.KindContract, live, revived)
}

// PurgeBenchmark is one run of both stores' BenchmarkPurgeArchived: it
// deletes every archived contract of p, in batches of batch as the engine
// purges, with b's timer running, and reports records a second and the
// slowest batch (the transaction the answers' commits may wait behind).
func PurgeBenchmark(b *testing.B, p Purger, batch int) {
	b.Helper()
	ctx := context.Background()
	b.StartTimer()
	start, total := time.Now(), 0
	var slowest time.Duration
	for more := true; more; {
		t0 := time.Now()
		n, m, err := p.PurgeArchived(ctx, sluice.KindContract, time.Now().Add(time.Hour), batch)
		if err != nil {
			b.Fatal(err)
		}
		slowest = max(slowest, time.Since(t0))
		total, more = total+n, m
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(slowest.Microseconds())/1000, "ms-slowest-batch")
}
