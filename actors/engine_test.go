package actors

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/persistence"
	"github.com/sluicehq/sluice/proof"
)

const interval = 5 * time.Minute

// node is one engine over a store, as cmd wires it.
type node struct {
	*Engine
	writer *persistence.Writer
}

func startNode(t *testing.T, store *memStore, challenges int) *node {
	t.Helper()
	w := persistence.NewWriter(store, persistence.WriterOptions{})
	e, err := Start(context.Background(), Config{
		Terms:      sluice.Terms{Interval: interval, Challenges: challenges},
		ChunkSizes: []int64{32 << 10},
	}, store, w, metrics.New(), zap.NewNop())
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	return &node{Engine: e, writer: w}
}

// store is the node's store, to start another node on it.
func (n *node) store() *memStore { return n.Engine.store.(*memStore) }

func (n *node) stop() {
	n.Stop()
	n.writer.Close()
	// protoactor's dead-letter log throttle runs a goroutine on a 1 s
	// ticker; let the bubble's clock pass it so the bubble can end.
	time.Sleep(2 * time.Second)
}

// prove answers a contract's current challenge the way a farmer does: it
// regenerates the chunk from the seed.
func prove(t *testing.T, c sluice.Contract, ch proof.Challenge) []byte {
	t.Helper()
	data := proof.NewSeeded(c.Seed, c.Size)
	tree, err := proof.BuildTree(data, c.Size, c.Tag.LeafSize)
	if err != nil {
		t.Fatalf("build tree: %v", err)
	}
	p, err := tree.Prove(data, ch)
	if err != nil {
		t.Fatalf("prove: %v", err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newContracts(t *testing.T, n *node, want int64) (sluice.RawToken, []sluice.Contract) {
	t.Helper()
	ctx := context.Background()
	raw, err := n.NewToken(ctx, TokenRequest{Address: "0x00000000000000000000000000000000000000aa", IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("new token: %v", err)
	}
	cs, err := n.Chunks(ctx, raw, "192.0.2.1", want)
	if err != nil {
		t.Fatalf("chunks: %v", err)
	}
	return raw, cs
}

func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

func TestContractExpiresExactlyAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		if len(cs) != 1 {
			t.Fatalf("got %d contracts, want 1", len(cs))
		}
		c := cs[0]

		sleepUntil(c.Due.Add(-time.Nanosecond))
		got, _ := store.contract(c.ID())
		if got.State != sluice.ContractLive {
			t.Fatalf("one nanosecond before the deadline: state %s, want live", got.State)
		}
		if r, err := n.Challenge(ctx, raw, c.FileHash); err != nil || r.Err != nil {
			t.Fatalf("one nanosecond before the deadline: got %v / %v, want the challenge", err, r.Err)
		}

		sleepUntil(c.Due)
		got, _ = store.contract(c.ID())
		if got.State != sluice.ContractExpired || !got.Closed.Equal(c.Due) {
			t.Fatalf("at the deadline: state %s closed %v, want expired at %v", got.State, got.Closed, c.Due)
		}
		r, err := n.Challenge(ctx, raw, c.FileHash)
		if err != nil || !errors.Is(r.Err, sluice.ErrContractExpired) {
			t.Fatalf("challenge after expiry: got %v / %v, want %q", err, r.Err, sluice.MsgContractExpired)
		}
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); !errors.Is(err, sluice.ErrContractExpired) {
			t.Fatalf("answer after expiry: got %v, want %q", err, sluice.MsgContractExpired)
		}
	})
}

func TestAnsweredChallengeYieldsTheNextAtTheDueTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]

		time.Sleep(interval / 2)
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); err != nil {
			t.Fatalf("answer: %v", err)
		}
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); !errors.Is(err, sluice.ErrAlreadyAnswered) {
			t.Fatalf("second answer: got %v, want %q", err, sluice.MsgAlreadyAnswered)
		}
		r, _ := n.Challenge(ctx, raw, c.FileHash)
		if !r.Answered || !r.Due.Equal(c.Due) {
			t.Fatalf("before due: answered %v due %v, want answered, due %v", r.Answered, r.Due, c.Due)
		}

		sleepUntil(c.Due)
		// The timer issued the next challenge by itself and handed it to the store.
		got, _ := store.contract(c.ID())
		if got.Index != 1 || !got.Due.Equal(c.Due.Add(interval)) || got.Answered {
			t.Fatalf("at due: index %d due %v answered %v, want 1, %v, false", got.Index, got.Due, got.Answered, c.Due.Add(interval))
		}
		r, _ = n.Challenge(ctx, raw, c.FileHash)
		if r.Err != nil || r.Answered || !r.Due.Equal(c.Due.Add(interval)) || r.Challenge.Seed == c.Challenge.Seed {
			t.Fatalf("next challenge: %+v, want a fresh unanswered one due %v", r, c.Due.Add(interval))
		}
		// The old proof does not answer the new challenge.
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); !errors.Is(err, sluice.ErrProofInvalid) {
			t.Fatalf("stale proof: got %v, want %q", err, sluice.MsgProofInvalid)
		}
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, r.Challenge)); err != nil {
			t.Fatalf("answer the next challenge: %v", err)
		}
		st, _ := n.Stats(ctx, raw.FarmerID())
		if st.Heartbeats != 2 {
			t.Fatalf("heartbeats: got %d, want 2", st.Heartbeats)
		}
	})
}

func TestMissedChallengeExpiresAndTokenCountersFollow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 64<<10)
		if len(cs) != 2 {
			t.Fatalf("got %d contracts, want 2", len(cs))
		}
		kept, missed := cs[0], cs[1]
		if err := n.Answer(ctx, raw, kept.FileHash, prove(t, kept, kept.Challenge)); err != nil {
			t.Fatalf("answer: %v", err)
		}
		want := func(when string, contracts int, bytes, heartbeats int64) {
			t.Helper()
			st, err := n.Stats(ctx, raw.FarmerID())
			if err != nil {
				t.Fatal(err)
			}
			if st.Contracts != contracts || st.Size != bytes || st.Heartbeats != heartbeats {
				t.Fatalf("%s: got contracts %d bytes %d heartbeats %d, want %d %d %d",
					when, st.Contracts, st.Size, st.Heartbeats, contracts, bytes, heartbeats)
			}
		}
		want("before due", 2, 64<<10, 1)

		sleepUntil(missed.Due)
		want("after the first due", 1, 32<<10, 1)

		sleepUntil(kept.Due.Add(interval))
		want("after the second due", 0, 0, 1)
		tok, _ := store.Get(ctx, sluice.KindToken, raw.FarmerID())
		tt, _ := decodeToken(tok)
		if tt.ClosedProofs != 1 {
			t.Fatalf("stored closed proofs: got %d, want 1", tt.ClosedProofs)
		}
		// The room freed by expired contracts is available again at once.
		more, err := n.Chunks(ctx, raw, "192.0.2.1", 64<<10)
		if err != nil || len(more) != 2 {
			t.Fatalf("chunks after expiry: got %d, %v, want 2", len(more), err)
		}
	})
}

func TestContractEndsAfterItsChallenges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 2)
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		for k := range 2 {
			r, _ := n.Challenge(ctx, raw, c.FileHash)
			if r.Err != nil {
				t.Fatalf("challenge %d: %v", k, r.Err)
			}
			if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, r.Challenge)); err != nil {
				t.Fatalf("answer %d: %v", k, err)
			}
			sleepUntil(r.Due)
		}
		r, _ := n.Challenge(ctx, raw, c.FileHash)
		if !errors.Is(r.Err, sluice.ErrNoMoreChallenges) {
			t.Fatalf("after the last challenge: got %v, want %q", r.Err, sluice.MsgNoMoreChallenges)
		}
		st, _ := n.Stats(ctx, raw.FarmerID())
		if st.Contracts != 0 || st.Heartbeats != 2 {
			t.Fatalf("stats: %+v, want no contracts and 2 heartbeats", st)
		}
	})
}

func TestRestartResumesFromSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		ctx := context.Background()
		raw, cs := newContracts(t, n, 96<<10)
		answered, pending, late := cs[0], cs[1], cs[2]
		if err := n.Answer(ctx, raw, answered.FileHash, prove(t, answered, answered.Challenge)); err != nil {
			t.Fatal(err)
		}
		if err := n.Answer(ctx, raw, late.FileHash, prove(t, late, late.Challenge)); err != nil {
			t.Fatal(err)
		}
		n.stop()

		// Back before the due time: every timer resumes with the time left.
		time.Sleep(interval / 2)
		n = startNode(t, store, 0)
		r, _ := n.Challenge(ctx, raw, answered.FileHash)
		if r.Err != nil || !r.Answered || !r.Due.Equal(answered.Due) {
			t.Fatalf("answered contract after restart: %+v, want answered, due %v", r, answered.Due)
		}
		st, _ := n.Stats(ctx, raw.FarmerID())
		if st.Contracts != 3 || st.Heartbeats != 2 {
			t.Fatalf("stats after restart: %+v, want 3 contracts, 2 heartbeats", st)
		}
		if err := n.Answer(ctx, raw, pending.FileHash, prove(t, pending, pending.Challenge)); err != nil {
			t.Fatalf("answer after restart: %v", err)
		}
		sleepUntil(answered.Due)
		if r, _ := n.Challenge(ctx, raw, answered.FileHash); r.Err != nil || r.Answered {
			t.Fatalf("deadline fired after restart: %+v, want the next challenge", r)
		}
		n.stop()

		// Down across a due time: the deadline moves to start-up plus one
		// interval instead of expiring the contract.
		time.Sleep(3 * interval)
		restart := time.Now()
		n = startNode(t, store, 0)
		defer n.stop()
		for _, c := range []sluice.Contract{answered, pending, late} {
			r, _ := n.Challenge(ctx, raw, c.FileHash)
			if r.Err != nil || !r.Due.Equal(restart.Add(interval)) {
				t.Fatalf("contract after downtime: %+v, want live and due %v", r, restart.Add(interval))
			}
		}
		sleepUntil(restart.Add(interval))
		if st, _ := n.Stats(ctx, raw.FarmerID()); st.Contracts != 0 {
			t.Fatalf("after the moved deadline passed unanswered: %d contracts live, want 0", st.Contracts)
		}
	})
}

func TestDeletedTokenCancelsContractsAndTheirTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		ctx := context.Background()
		var mu sync.Mutex
		var stray []any
		n.sys.EventStream.Subscribe(func(ev any) {
			if dl, ok := ev.(*actor.DeadLetterEvent); ok {
				if _, isTimer := dl.Message.(*deadlinePassed); isTimer {
					mu.Lock()
					stray = append(stray, dl.Message)
					mu.Unlock()
				}
			}
		})
		raw, cs := newContracts(t, n, 64<<10)
		if err := n.DeleteToken(ctx, raw); err != nil {
			t.Fatalf("delete: %v", err)
		}
		time.Sleep(time.Second) // cancelling the contracts is asynchronous
		synctest.Wait()
		if _, err := n.Authenticate(ctx, raw); !errors.Is(err, sluice.ErrUnknownToken) {
			t.Fatalf("deleted token: got %v, want %q", err, sluice.MsgNonexistentToken)
		}
		for _, c := range cs {
			got, _ := store.contract(c.ID())
			if got.State != sluice.ContractCancelled {
				t.Fatalf("contract after delete: %s, want cancelled", got.State)
			}
		}
		sleepUntil(cs[0].Due.Add(interval))
		mu.Lock()
		defer mu.Unlock()
		if len(stray) != 0 {
			t.Fatalf("%d deadline timers fired after their contracts stopped, want 0", len(stray))
		}
	})
}

func TestFailedCommitAcknowledgesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		store.setFail(errors.New("disk on fire"))
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); !errors.Is(err, sluice.ErrUnavailable) {
			t.Fatalf("answer with a failing store: got %v, want unavailable", err)
		}
		store.setFail(nil)
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); err != nil {
			t.Fatalf("answer once the store is back: %v", err)
		}
		if got, _ := store.contract(c.ID()); !got.Answered || got.Proofs != 1 {
			t.Fatalf("stored: answered %v proofs %d, want true 1", got.Answered, got.Proofs)
		}
	})
}

// An answer whose commit outlives its caller's deadline is unavailable to
// that caller, but its contract learns that the commit landed: the same
// proof again is already answered, not accepted a second time over a
// version the store already holds.
func TestCommitAfterTheCallersDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		store.mu.Lock()
		store.stall = make(chan struct{})
		store.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); !errors.Is(err, sluice.ErrUnavailable) {
			t.Fatalf("answer whose commit stalls past the deadline: got %v, want unavailable", err)
		}
		if took := time.Since(start); took < time.Second || took > time.Second+goneCheck {
			t.Errorf("answer gave up after %s, want at its deadline (1s, within %s)", took, goneCheck)
		}
		close(store.stall)
		synctest.Wait()
		if got, _ := store.contract(c.ID()); !got.Answered || got.Proofs != 1 {
			t.Fatalf("stored: answered %v proofs %d, want true 1 (the commit landed)", got.Answered, got.Proofs)
		}
		err := n.Answer(context.Background(), raw, c.FileHash, prove(t, c, c.Challenge))
		if !errors.Is(err, sluice.ErrAlreadyAnswered) {
			t.Fatalf("the same proof after the late commit: got %v, want %q", err, sluice.ErrAlreadyAnswered)
		}
	})
}

// TestRequestsAtTheDeadlineAreAnswered: requests that arrive at the very
// instant a contract expires (queued behind its closing) are answered at
// once, not left to time out.
func TestRequestsAtTheDeadlineAreAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		time.Sleep(time.Until(c.Due))
		var wg sync.WaitGroup
		errs := make([]error, 20)
		took := make([]time.Duration, 20)
		for i := range errs {
			wg.Go(func() {
				start := time.Now()
				if i%2 == 0 {
					r, err := n.Challenge(ctx, raw, c.FileHash)
					errs[i] = errors.Join(err, r.Err)
				} else {
					errs[i] = n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge))
				}
				took[i] = time.Since(start)
			})
		}
		wg.Wait()
		// A request queued before the contract's poison pill is answered by
		// the actor at once; one that raced the actor's removal is answered
		// when its wait notices the actor gone: a challenge's Ask looks at
		// every tick, an answer's batch every goneEvery ticks. Neither
		// waits for the ask timeout.
		for i, err := range errs {
			within := goneCheck
			if i%2 == 1 {
				within = goneEvery * goneCheck
			}
			if !errors.Is(err, sluice.ErrContractExpired) || took[i] > within {
				t.Fatalf("request %d at the deadline: %v after %s, want %q within %s", i, err, took[i], sluice.MsgContractExpired, within)
			}
		}
		// Asks answered that way leave their futures to time out.
		time.Sleep(n.cfg.AskTimeout)
	})
}

// lossyQueue loses every record handed over without waiting, as a crash
// before the writer's next flush would.
type lossyQueue struct{ *persistence.Writer }

func (lossyQueue) Enqueue(...sluice.Record) {}

// A challenge is committed before a farmer sees it: after a crash the node
// asks for the challenge the farmer is answering, not a fresh one that
// would make a correct proof invalid.
func TestShownChallengeSurvivesACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		w := persistence.NewWriter(store, persistence.WriterOptions{})
		e, err := Start(context.Background(), Config{
			Terms: sluice.Terms{Interval: interval}, ChunkSizes: []int64{32 << 10},
		}, store, lossyQueue{w}, metrics.New(), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		n := &node{Engine: e, writer: w}
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		time.Sleep(interval / 2)
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); err != nil {
			t.Fatalf("answer: %v", err)
		}
		sleepUntil(c.Due) // the next challenge is issued and queued, and the queue is lost
		shown, err := n.Challenge(ctx, raw, c.FileHash)
		if err != nil || shown.Err != nil || shown.Answered {
			t.Fatalf("next challenge: %v / %+v", err, shown)
		}
		n.stop()

		time.Sleep(interval / 2) // back before the shown challenge is due
		n = startNode(t, store, 0)
		defer n.stop()
		r, _ := n.Challenge(ctx, raw, c.FileHash)
		if r.Err != nil || r.Challenge.Seed != shown.Challenge.Seed || !r.Due.Equal(shown.Due) {
			t.Fatalf("after the crash: %+v, want the challenge shown before it (due %v)", r, shown.Due)
		}
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, shown.Challenge)); err != nil {
			t.Fatalf("answer to the challenge shown before the crash: %v", err)
		}
	})
}

// A batch is judged item by item: an accepted proof, the same proof again,
// a contract that expired (its actor is gone: answered from its record), a
// chunk the farmer never held, in the order sent; a batch with an unknown
// token is refused whole, an empty one only authenticates.
func TestBatchAnswersEveryKindOfItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newMemStore(), 0)
		defer n.stop()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 64<<10)
		if len(cs) != 2 {
			t.Fatalf("got %d contracts, want 2", len(cs))
		}
		kept, lapsed := cs[0], cs[1]
		if err := n.Answer(ctx, raw, kept.FileHash, prove(t, kept, kept.Challenge)); err != nil {
			t.Fatalf("answer: %v", err)
		}
		sleepUntil(kept.Due) // lapsed expires; kept gets its next challenge
		next, err := n.Challenge(ctx, raw, kept.FileHash)
		if err != nil || next.Err != nil {
			t.Fatalf("next challenge: %v / %v", err, next.Err)
		}
		p := prove(t, kept, next.Challenge)
		errs, err := n.Answers(ctx, raw, []AnswerItem{
			{Hash: kept.FileHash, Proof: p},
			{Hash: kept.FileHash, Proof: p},
			{Hash: lapsed.FileHash, Proof: prove(t, lapsed, lapsed.Challenge)},
			{Hash: sluice.FileHash{1}, Proof: p},
		})
		if err != nil {
			t.Fatalf("answers: %v", err)
		}
		want := []error{nil, sluice.ErrAlreadyAnswered, sluice.ErrContractExpired, sluice.ErrContractNotFound}
		for i := range want {
			if !errors.Is(errs[i], want[i]) || (want[i] == nil) != (errs[i] == nil) {
				t.Errorf("item %d: got %v, want %v", i, errs[i], want[i])
			}
		}
		if _, err := n.Answers(ctx, sluice.RawToken{9}, []AnswerItem{{Hash: kept.FileHash, Proof: p}}); !errors.Is(err, sluice.ErrUnknownToken) {
			t.Errorf("unknown token: got %v, want %v", err, sluice.ErrUnknownToken)
		}
		if errs, err := n.Answers(ctx, raw, nil); err != nil || len(errs) != 0 {
			t.Errorf("empty batch: got %v, %v", errs, err)
		}
		if _, err := n.Answers(ctx, sluice.RawToken{9}, nil); !errors.Is(err, sluice.ErrUnknownToken) {
			t.Errorf("empty batch, unknown token: got %v, want %v", err, sluice.ErrUnknownToken)
		}
	})
}

// Start returns once every contract it loaded has its actor running with
// its deadline armed, not only spawned: /readyz turns on then, and the
// benchmark times a restart to it.
func TestStartReturnsWithEveryDeadlineArmed(t *testing.T) {
	store := newMemStore()
	n := startNode(t, store, 0)
	ctx := context.Background()
	const contracts = 2000
	raw, err := n.NewToken(ctx, TokenRequest{Address: "0x00000000000000000000000000000000000000aa", IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	for have := 0; have < contracts; {
		cs, err := n.Chunks(ctx, raw, "192.0.2.1", int64(contracts-have)*(32<<10))
		if err != nil || len(cs) == 0 {
			t.Fatalf("chunks: %d, %v", len(cs), err)
		}
		have += len(cs)
	}
	n.stop()

	n = startNode(t, store, 0)
	defer n.stop()
	left := 0
	n.boot.Range(func(who, _ any) bool {
		if who.(Identity).Kind == sluice.KindContract {
			left++
		}
		return true
	})
	if left != 0 {
		t.Fatalf("Start returned with %d of %d contract actors not yet started", left, contracts)
	}
}

// An answer whose store does not commit before the request's deadline is
// unavailable (503, try again), never a bare context error (500): the
// request's deadline and the commit deadline fall at the same instant,
// and either may be seen first.
func TestAnswerAtItsDeadlineIsUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		p := prove(t, c, c.Challenge)
		store.mu.Lock()
		store.stall = make(chan struct{})
		store.mu.Unlock()
		for i := range 20 {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			err := n.Answer(ctx, raw, c.FileHash, p)
			cancel()
			if !errors.Is(err, sluice.ErrUnavailable) {
				t.Fatalf("answer %d at its deadline: got %v, want unavailable", i, err)
			}
		}
		close(store.stall)
		synctest.Wait()
	})
}

// The HTTP handlers reuse a body's memory only when AnswersReusable says
// no actor can read its proofs any more: after every item's result, or a
// refusal by the token; never after a wait cut short with items out.
func TestAnswersSayWhenProofsAreReusable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		raw, cs := newContracts(t, n, 3*32<<10)
		ctx := context.Background()

		items := []AnswerItem{
			{Hash: cs[0].FileHash, Proof: prove(t, cs[0], cs[0].Challenge)},
			{Hash: cs[1].FileHash, Proof: []byte(`{"not":"a proof"}`)},
			{Hash: sluice.FileHash{1}, Proof: []byte(`{}`)}, // no such contract
		}
		errs, reusable, err := n.AnswersReusable(ctx, raw, items)
		if err != nil || errs[0] != nil || errs[1] == nil || !errors.Is(errs[2], sluice.ErrContractNotFound) {
			t.Fatalf("answers: got %v, %v; want accepted, refused, not found", errs, err)
		}
		if !reusable {
			t.Error("every item answered: got not reusable")
		}
		bad := raw
		bad[len(bad)-1] ^= 1 // the same farmer, a wrong secret
		for _, tok := range []sluice.RawToken{bad, {9}} {
			if _, reusable, err := n.AnswersReusable(ctx, tok, items[:1]); err == nil || !reusable {
				t.Errorf("token %s refused: got reusable %v, %v; want an error and reusable", tok, reusable, err)
			}
		}

		store.mu.Lock()
		store.stall = make(chan struct{})
		store.mu.Unlock()
		// The caller leaves while the contract's actor is stuck in its
		// commit, still holding the proof.
		c := cs[2]
		short, cancel := context.WithCancel(ctx)
		type result struct {
			reusable bool
			err      error
		}
		res := make(chan result)
		go func() {
			reusable, err := n.AnswerReusable(short, raw, c.FileHash, prove(t, c, c.Challenge))
			res <- result{reusable, err}
		}()
		synctest.Wait() // the actor is blocked in the stalled commit
		cancel()
		if r := <-res; !errors.Is(r.err, sluice.ErrUnavailable) || r.reusable {
			t.Errorf("answer cut short while its commit stalls: got reusable %v, %v; want unavailable and not reusable", r.reusable, r.err)
		}
		close(store.stall)
		synctest.Wait()
	})
}

// A deadline message that comes before the armed time (a timer that fired
// for an earlier time just before a re-arm, or a wall clock set back)
// neither closes the contract early nor loses its deadline.
func TestEarlyDeadlineMessageWaitsForTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		_, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		sleepUntil(c.Due.Add(-c.Interval / 2))
		if !n.dir.Tell(contractIdentity(c.ID()), deadlineFired) {
			t.Fatal("no contract actor")
		}
		synctest.Wait()
		if got, _ := store.contract(c.ID()); got.State != sluice.ContractLive || !got.Due.Equal(c.Due) {
			t.Fatalf("after an early deadline message: state %s due %v, want live, due %v", got.State, got.Due, c.Due)
		}
		sleepUntil(c.Due)
		if got, _ := store.contract(c.ID()); got.State != sluice.ContractExpired || !got.Closed.Equal(c.Due) {
			t.Fatalf("at the deadline: state %s closed %v, want expired at %v", got.State, got.Closed, c.Due)
		}
	})
}

// countingDirectory counts the lookups a token makes to reach a contract.
type countingDirectory struct {
	Directory
	mu       sync.Mutex
	resolved int
}

func (d *countingDirectory) Resolve(who Identity) (*actor.PID, bool) {
	d.mu.Lock()
	d.resolved++
	d.mu.Unlock()
	return d.Directory.Resolve(who)
}

func (d *countingDirectory) lookups() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resolved
}

// A token looks its contract's actor up for the first answer only; the
// entry goes when the contract closes, so an answer after that is looked
// up again and answered from the archived record.
func TestTokenKeepsItsContractsActor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		synctest.Wait()
		dir := &countingDirectory{Directory: n.Engine.dir}
		n.Engine.dir = dir
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]

		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); err != nil {
			t.Fatalf("answer: %v", err)
		}
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); !errors.Is(err, sluice.ErrAlreadyAnswered) {
			t.Fatalf("second answer: got %v, want %q", err, sluice.MsgAlreadyAnswered)
		}
		if got := dir.lookups(); got != 1 {
			t.Fatalf("lookups after two answers: %d, want 1", got)
		}
		sleepUntil(c.Due)
		r, _ := n.Challenge(ctx, raw, c.FileHash)
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, r.Challenge)); err != nil {
			t.Fatalf("answer the next challenge: %v", err)
		}
		if got := dir.lookups(); got != 1 {
			t.Fatalf("lookups after the next challenge's answer: %d, want 1", got)
		}

		// Unanswered past its due time: the contract expires and closes.
		sleepUntil(r.Due.Add(interval))
		if got, _ := store.contract(c.ID()); got.State != sluice.ContractExpired {
			t.Fatalf("state %s, want expired", got.State)
		}
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, r.Challenge)); !errors.Is(err, sluice.ErrContractExpired) {
			t.Fatalf("answer after expiry: got %v, want %q", err, sluice.MsgContractExpired)
		}
		if got := dir.lookups(); got != 2 {
			t.Fatalf("lookups after the contract closed: %d, want 2 (its actor looked up again)", got)
		}
	})
}

// A contract actor whose supervisor gave up (too many failures in a
// minute) stops while its token still tracks it: answers the token sends
// it then go to the dead letters, not into the stopped actor's mailbox,
// where they would stay for good with their proofs.
func TestAnswersToAContractItsSupervisorStoppedAreNotKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		n := startNode(t, store, 0)
		defer n.stop()
		synctest.Wait()
		ctx := context.Background()
		raw, cs := newContracts(t, n, 32<<10)
		c := cs[0]
		if err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge)); err != nil {
			t.Fatalf("answer: %v", err)
		}
		var mu sync.Mutex
		dead := 0
		sub := n.Engine.sys.EventStream.Subscribe(func(ev any) {
			if d, ok := ev.(*actor.DeadLetterEvent); ok {
				if _, ok := d.Message.(*answerItem); ok {
					mu.Lock()
					dead++
					mu.Unlock()
				}
			}
		})
		defer n.Engine.sys.EventStream.Unsubscribe(sub)
		// An item whose Done is closed makes the actor panic: eleven in a
		// minute and its supervisor stops it.
		who := contractIdentity(c.ID())
		for range 11 {
			closed := make(chan answerDone)
			close(closed)
			n.Engine.dir.Tell(who, &answerItem{Done: closed, id: c.ID(), hash: c.FileHash})
			synctest.Wait()
		}
		if n.Engine.dir.Alive(who) {
			t.Fatal("the contract's actor is still alive after eleven failures")
		}
		for range 5 {
			// Answered from the stored record once the request sees the
			// actor gone, well before its deadline.
			start := time.Now()
			err := n.Answer(ctx, raw, c.FileHash, prove(t, c, c.Challenge))
			if took := time.Since(start); took >= time.Second {
				t.Fatalf("an answer to the stopped actor: %v after %s, want it answered from the stored record within a second",
					err, took)
			}
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if dead != 5 {
			t.Fatalf("%d of 5 answers to the stopped actor went to the dead letters, want all (the others stay in its mailbox)", dead)
		}
	})
}
