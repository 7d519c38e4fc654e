package actors

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
)

const holdAddress = "0x00000000000000000000000000000000000000aa"

// startSmallNode is startNode with room for four chunks per address, and
// perRequest chunks per request at most (0: no limit).
func startSmallNode(t *testing.T, perRequest int) *node {
	t.Helper()
	store := newMemStore()
	w := persistence.NewWriter(store, persistence.WriterOptions{})
	e, err := Start(context.Background(), Config{
		Terms:               sluice.Terms{Interval: interval},
		ChunkSizes:          []int64{32 << 10},
		MaxBytesPerAddress:  4 * (32 << 10),
		MaxChunksPerRequest: perRequest,
	}, store, w, metrics.New(), zap.NewNop())
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	return &node{Engine: e, writer: w}
}

// holdSetup starts a small node with a token of holdAddress, and takes
// every slot for making chunks (fillChunkMakers). In a synctest bubble.
func holdSetup(t *testing.T, perRequest int) (*node, sluice.RawToken, func()) {
	t.Helper()
	n := startSmallNode(t, perRequest)
	synctest.Wait()
	raw, err := n.NewToken(context.Background(), TokenRequest{Address: holdAddress, IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	return n, raw, fillChunkMakers(n.Engine)
}

// fillChunkMakers takes every slot for making chunks, as chunk requests of
// other farmers would; the returned func gives them back.
func fillChunkMakers(e *Engine) func() {
	for range runtime.GOMAXPROCS(0) {
		e.chunkMakers <- struct{}{}
	}
	return func() {
		for range runtime.GOMAXPROCS(0) {
			<-e.chunkMakers
		}
	}
}

// While one request makes chunks for its address's room, a parallel
// request of the same address finds no room, instead of making chunks for
// the same room that its address could not take in the end.
func TestChunkRequestHoldsItsRoomWhileItMakesChunks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, raw, release := holdSetup(t, 0)
		defer n.stop()
		ctx, limit := context.Background(), n.cfg.MaxBytesPerAddress
		type result struct {
			cs  []sluice.Contract
			err error
		}
		first := make(chan result, 1)
		go func() {
			cs, err := n.Chunks(ctx, raw, "192.0.2.1", 4*(32<<10))
			first <- result{cs, err}
		}()
		synctest.Wait() // the first request waits for a slot, holding its room
		if room := n.ledger.room(holdAddress, limit); room != limit-4*(32<<10) {
			t.Fatalf("room while the first request makes its chunks: %d, want %d held", room, limit-4*(32<<10))
		}
		// A second request of the same address finds no room, at once.
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		cs, err := n.Chunks(short, raw, "192.0.2.1", limit)
		if err != nil || len(cs) != 0 || time.Since(start) > 0 {
			t.Fatalf("second request: %d contracts, %v after %s; want none, at once", len(cs), err, time.Since(start))
		}
		release()
		r := <-first
		if r.err != nil || len(r.cs) != 4 {
			t.Fatalf("first request: %d contracts, %v; want 4", len(r.cs), r.err)
		}
		if room := n.ledger.room(holdAddress, limit); room != 0 {
			t.Fatalf("room after the first request: %d, want 0 (its contracts take it all)", room)
		}
	})
}

// A chunk request whose time runs out before or while it makes its chunks
// is unavailable (503, try again), not an internal error, and gives back
// the room it held.
func TestChunkRequestOutOfTimeIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, raw, release := holdSetup(t, 0)
		defer n.stop()
		ctx, limit := context.Background(), n.cfg.MaxBytesPerAddress
		defer release()
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := n.Chunks(short, raw, "192.0.2.1", 32<<10); !errors.Is(err, sluice.ErrUnavailable) {
			t.Fatalf("request out of time while waiting to make chunks: %v, want unavailable", err)
		}
		if room := n.ledger.room(holdAddress, limit); room != limit {
			t.Fatalf("room after the request gave up: %d, want all of it (%d)", room, limit)
		}
		// Out of time before it even asked its token.
		if _, err := n.Chunks(short, raw, "192.0.2.1", 32<<10); !errors.Is(err, sluice.ErrUnavailable) {
			t.Fatalf("request out of time: %v, want unavailable", err)
		}
	})
}

// The hold lasts until the contracts are made: another token of the same
// address asking while the first request waits on its token (here busy
// with a slow commit) finds no room, rather than taking the room the
// first request made its chunks for.
func TestChunkRequestKeepsItsHoldUntilItsContractsAreMade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, t1, release := holdSetup(t, 0)
		defer n.stop()
		ctx, limit := context.Background(), n.cfg.MaxBytesPerAddress
		store := n.Engine.store.(*memStore)
		t2, err := n.NewToken(ctx, TokenRequest{Address: holdAddress, IP: "192.0.2.2"})
		if err != nil {
			t.Fatal(err)
		}
		a := make(chan []sluice.Contract, 1)
		go func() { cs, _ := n.Chunks(ctx, t1, "192.0.2.1", limit); a <- cs }()
		synctest.Wait() // the first request holds all the room, waiting for a slot
		// Keep its token busy: an IP move commits, and the store stalls.
		stall := make(chan struct{})
		store.mu.Lock()
		store.stall = stall
		store.mu.Unlock()
		go n.Chunks(ctx, t1, "192.0.2.9", 0)
		synctest.Wait()
		release()
		synctest.Wait() // its chunks are made; it waits on its token
		b := make(chan []sluice.Contract, 1)
		go func() { cs, _ := n.Chunks(ctx, t2, "192.0.2.2", limit); b <- cs }()
		synctest.Wait()
		store.mu.Lock()
		store.stall = nil
		store.mu.Unlock()
		close(stall)
		if ca, cb := <-a, <-b; len(ca) != 4 || len(cb) != 0 {
			t.Fatalf("got %d contracts for the first request and %d for the later one, want 4 and 0", len(ca), len(cb))
		}
		if room, free := n.ledger.room(holdAddress, limit), n.ledger.free(holdAddress, limit); room != 0 || free != 0 {
			t.Fatalf("ledger after both: room %d, free %d; want 0 and 0 (four contracts, nothing held)", room, free)
		}
	})
}

// Holds count against the limit for room and reserve, and not for free:
// what an address could take once the requests making chunks are done.
func TestLedgerHolds(t *testing.T) {
	l := newLedger()
	const a, limit = "0xa", 100
	l.add(a, 30)
	if got := l.hold(a, 50, limit); got != 50 {
		t.Fatalf("hold 50 of 70 free: got %d", got)
	}
	if got := l.hold(a, 50, limit); got != 20 {
		t.Fatalf("hold 50 of the 20 left: got %d", got)
	}
	if room, free := l.room(a, limit), l.free(a, limit); room != 0 || free != 70 {
		t.Fatalf("room %d, free %d; want 0 and 70", room, free)
	}
	if got := l.reserve(a, 10, limit); got != 0 {
		t.Fatalf("reserve with everything held: got %d", got)
	}
	l.unhold(a, 50)
	l.unhold(a, 20)
	if room, free := l.room(a, limit), l.free(a, limit); room != 70 || free != 70 {
		t.Fatalf("after the holds are given back: room %d, free %d; want 70 and 70", room, free)
	}
}

// A request holds only the room of the chunks it hands out: with two
// chunks per request, the rest of its address's room is for others.
func TestChunkRequestHoldsOnlyWhatItHandsOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, raw, release := holdSetup(t, 2)
		defer n.stop()
		ctx, limit := context.Background(), n.cfg.MaxBytesPerAddress
		done := make(chan []sluice.Contract, 1)
		go func() { cs, _ := n.Chunks(ctx, raw, "192.0.2.1", limit); done <- cs }()
		synctest.Wait() // it waits for a slot to make its two chunks
		if room := n.ledger.room(holdAddress, limit); room != limit-2*(32<<10) {
			t.Fatalf("room while a request makes two chunks: %d, want %d", room, limit-2*(32<<10))
		}
		release()
		if cs := <-done; len(cs) != 2 {
			t.Fatalf("got %d contracts, want 2", len(cs))
		}
	})
}

// A token uses a caller's hold only while the caller may still be waiting
// for it: a late AddContracts (its caller gave up, and its hold back)
// makes no more contracts than the address has room for.
func TestLateAddContractsDoesNotUseAGivenBackHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, raw, release := holdSetup(t, 0)
		defer n.stop()
		release()
		ctx, limit := context.Background(), n.cfg.MaxBytesPerAddress
		if cs, err := n.Chunks(ctx, raw, "192.0.2.1", limit); err != nil || len(cs) != 4 {
			t.Fatalf("filling the address: %d contracts, %v", len(cs), err)
		}
		ch, err := n.seededChunk(ctx, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		res, err := n.askToken(ctx, raw, &AddContracts{Raw: raw, Chunks: []sluice.Chunk{ch},
			Held: 32 << 10, HeldUntil: time.Now().Add(-time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if a := res.(*AddContractsReply); len(a.Contracts) != 0 || n.ledger.free(holdAddress, limit) != 0 {
			t.Fatalf("late AddContracts on a full address: %d contracts, free %d; want none, and 0", len(a.Contracts), n.ledger.free(holdAddress, limit))
		}
	})
}
