package actors

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/proof"
)

// GetChallenge asks a contract for its current challenge.
type GetChallenge struct{}

// ChallengeReply is the current challenge, or Err when there is none.
type ChallengeReply struct {
	Challenge proof.Challenge
	Due       time.Time
	Answered  bool
	Err       error
}

// answerItem submits one proof (raw JSON) of a batch for the contract's
// current challenge: the actor puts its result, nil when the proof was
// accepted and committed, on Done (buffered for the whole batch). An
// accepted proof's commit must start by By (Writer.CommitBy); the batch's
// items share it.
type answerItem struct {
	Proof []byte
	Index int
	Done  chan<- answerDone
	By    time.Time
	id    string          // the contract's id
	hash  sluice.FileHash // and its chunk's hash
	token *actor.PID      // the token's actor, which handed the item on
}

type answerDone struct {
	Index int
	Err   error
}

// GetContract asks a contract actor for its state.
type GetContract struct{}

// ContractReply is a copy of a live contract.
type ContractReply struct {
	Contract sluice.Contract
}

// cancelContract ends the contract because its token was given up.
type cancelContract struct{}

// deadlinePassed is what a contract's timer sends: the time it was armed
// for (contractActor.armed) may have come. One value serves every timer.
type deadlinePassed struct{}

var deadlineFired = &deadlinePassed{}

// contractActor owns one contract: its state and its deadline timer.
type contractActor struct {
	e *Engine
	c sluice.Contract
	// deadline is the contract's place in the engine's deadlines, which
	// tell it when armed has come (see deadlines for why not a timer).
	deadline deadlineEntry
	armed    time.Time // when the deadline fires; zero while disarmed
	// queued is set while the current state was handed to the writer
	// without waiting (a newly issued challenge): it is committed before
	// the challenge is shown to a farmer.
	queued bool
}

// newContractProps is shared by every contract actor: a contract's first
// state reaches its actor through Engine.boot, keyed by identity, so no
// per-actor closure or Props is kept (at a million contracts that is
// hundreds of megabytes). Contract actors get the lean mailbox, which
// holds nothing while it is empty: each receives a few messages an
// interval (see leanMailbox).
func newContractProps(e *Engine) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &contractActor{e: e} },
		actor.WithSupervisor(entitySupervision(e.log)),
		actor.WithMailbox(newLeanMailbox), actor.WithDispatcher(e.dispatch))
}

func (a *contractActor) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actor.Started:
		a.start(c)
	case *actor.Stopping, *actor.Restarting:
		a.disarm()
	case *deadlinePassed:
		if a.armed.IsZero() {
			return // fired before the timer was disarmed
		}
		if now := a.e.now(); now.Before(a.armed) {
			// Fired for an earlier time before a re-arm (the timer runs
			// again at the new one), or the wall clock went back since
			// the timer was set: wait on.
			a.e.deadlines.set(&a.deadline, c.Self(), a.armed)
			return
		}
		a.armed = time.Time{}
		a.advance(c)
	case *GetChallenge:
		a.advance(c)
		err := a.c.Err()
		if err == nil {
			err = a.settle()
		}
		if err != nil {
			c.Respond(&ChallengeReply{Err: err})
			return
		}
		c.Respond(&ChallengeReply{Challenge: a.c.Challenge, Due: a.c.Due, Answered: a.c.Answered})
	case *answerItem:
		msg.Done <- answerDone{Index: msg.Index, Err: a.answer(msg, c)}
	case *GetContract:
		c.Respond(&ContractReply{Contract: a.c})
	case *cancelContract:
		next := a.c
		next.Cancel(a.e.now())
		a.close(c, next)
	}
}

func (a *contractActor) start(c actor.Context) {
	id := entityID(c.Self())
	if st, ok := a.e.boot.LoadAndDelete(contractIdentity(id)); ok {
		switch st := st.(type) {
		case *sluice.Contract:
			a.c = *st
		case recoveredContract:
			a.c, a.queued = *st.c, st.queued
			// Start-up waits for every recovered contract to have armed.
			defer a.e.rearming.Done()
		}
	} else {
		// A restart after a failure: resume from the last committed snapshot.
		rec, err := a.e.store.Get(context.Background(), sluice.KindContract, id)
		if err != nil {
			panic(fmt.Sprintf("reload contract snapshot: %v", err)) // supervisor retries
		}
		if a.c, err = decodeContract(rec); err != nil {
			panic(fmt.Sprintf("decode contract snapshot: %v", err))
		}
	}
	a.advance(c)
}

// recoveredContract is the first state of a contract loaded at start-up;
// queued says it was handed to the writer without waiting (recovery
// issued it a new challenge).
type recoveredContract struct {
	c      *sluice.Contract
	queued bool
}

// arm sets the timer for the current due time; the contract actor is the
// only owner of its deadline.
func (a *contractActor) arm(c actor.Context) {
	if !a.c.Live() || a.armed.Equal(a.c.Due) {
		return
	}
	a.setTimer(c, a.c.Due)
}

// setTimer arms the deadline for at, replacing any earlier time.
func (a *contractActor) setTimer(c actor.Context, at time.Time) {
	a.armed = at
	a.e.deadlines.set(&a.deadline, c.Self(), at)
}

func (a *contractActor) disarm() {
	a.e.deadlines.remove(&a.deadline)
	a.armed = time.Time{}
}

// advance applies the grid up to now. A newly issued challenge is handed to
// the writer without waiting: after a crash, recovery issues a fresh one.
// A contract that closed is closed for good (committed, then stopped).
func (a *contractActor) advance(c actor.Context) {
	next := a.c
	now := a.e.now()
	if a.displaced(now) {
		next.EndEarly()
		a.e.metrics.Displaced.Inc()
	}
	changed, err := next.Advance(now, a.e.cfg.Scheme, a.e.rng())
	if err != nil {
		panic(fmt.Sprintf("advance contract: %v", err)) // no randomness: restart
	}
	switch {
	case !next.Live():
		a.close(c, next)
	case changed:
		next.Version++
		a.e.writer.Enqueue(contractRecord(&next))
		moved := !next.Due.Equal(a.c.Due)
		a.c = next
		a.queued = true
		a.arm(c)
		if moved {
			// The token's last_due follows (not persisted per challenge:
			// see sluice.Token.LastDue).
			a.e.dir.Tell(tokenIdentity(a.c.Farmer), &challengeIssued{Due: a.c.Due})
		}
	default:
		a.arm(c)
	}
}

// displaced reports whether a prototype contract whose answered challenge
// fell due by now ends there, its room wanted for a piece of an upload
// (see uploadPool). An unanswered one expires anyway; an uploaded piece
// is never displaced.
func (a *contractActor) displaced(now time.Time) bool {
	c := &a.c
	if !c.Live() || c.Source != "" || !c.Answered || now.Before(c.Due) || c.Limit == c.Index+1 {
		return false
	}
	return a.e.pool.displace(c.Farmer, c.Size, now)
}

// answer checks a proof and commits the answered contract within ctx.
func (a *contractActor) answer(it *answerItem, c actor.Context) error {
	a.advance(c)
	if err := a.c.Err(); err != nil {
		a.e.metrics.Proofs.WithLabelValues("expired").Inc()
		return err
	}
	next := a.c
	if err := next.Answer(it.Proof, a.e.now(), a.e.cfg.Scheme, a.e.rng()); err != nil {
		a.e.metrics.Proofs.WithLabelValues(proofResult(err)).Inc()
		return err
	}
	next.Version++
	// The actor waits for the outcome even past the deadline: a proof
	// committed after its caller gave up is still accepted, and the next
	// change must build on it.
	if err := a.e.writer.CommitBy(it.By, contractRecord(&next)); err != nil {
		a.e.log.Warn(eventCommitFailed, zap.String("kind", "contract"), zap.Error(err))
		return unavailable(err)
	}
	a.c = next
	a.queued = false
	a.e.metrics.Proofs.WithLabelValues("accepted").Inc()
	// Straight to the PID the token sent: it keeps the token's process,
	// where the directory would look the actor up by name again.
	c.Send(it.token, &proofAccepted{Due: a.c.Due})
	if a.c.Quote != "" && a.c.Proofs == 1 {
		// The farmer has shown it holds its piece of an upload.
		// Every quote with these bytes may now be held, not only the
		// one the piece was cut from.
		quotes := a.e.pool.prove(a.c.Farmer, a.c.FileHash)
		if !slices.Contains(quotes, a.c.Quote) {
			quotes = append(quotes, a.c.Quote)
		}
		for _, q := range quotes {
			a.e.dir.Tell(quoteIdentity(q), &chunksHeld{})
		}
	}
	return nil
}

// settle commits a challenge issued without waiting before a farmer sees
// it: a farmer answering a challenge the node lost in a crash would have
// its correct proof rejected. Usually the queued write is long done and
// this commit of the same version is a no-op for the store.
func (a *contractActor) settle() error {
	if !a.queued {
		return nil
	}
	if err := a.e.writer.CommitBy(a.e.commitBy(), contractRecord(&a.c)); err != nil {
		a.e.log.Warn(eventCommitFailed, zap.String("kind", "contract"), zap.Error(err))
		return unavailable(err)
	}
	a.queued = false
	return nil
}

func proofResult(err error) string {
	switch err {
	case sluice.ErrProofCorrupted:
		return "corrupted"
	case sluice.ErrAlreadyAnswered:
		return "repeated"
	case sluice.ErrNoMoreChallenges, sluice.ErrContractExpired:
		return "expired"
	}
	return "invalid"
}

// close commits the closed contract together with its token (which folds
// the contract's proofs into its own count), then stops the actor. Later
// questions about the contract are answered from the archived record.
func (a *contractActor) close(c actor.Context, next sluice.Contract) {
	if !a.c.Live() {
		return // already closed: a message queued before the poison pill
	}
	a.disarm()
	next.Version++
	ctx, cancel := context.WithTimeout(context.Background(), a.e.cfg.AskTimeout)
	defer cancel()
	res, err := a.e.dir.Ask(ctx, tokenIdentity(next.Farmer), &contractClosing{Contract: next})
	if err == errNoActor {
		// The token is gone (deleted); archive the contract on its own.
		err = a.e.writer.CommitBy(a.e.commitBy(), contractRecord(&next))
	} else if err == nil {
		err = res.(*contractClosingReply).Err
	}
	if err != nil {
		// Not committed: keep the live state and try again at the next
		// message or in a second. Nothing was acknowledged on this change.
		a.e.log.Warn(eventCommitFailed, zap.String("kind", "contract"), zap.Error(err))
		a.setTimer(c, a.e.now().Add(time.Second))
		return
	}
	a.c = next
	if next.Quote != "" {
		a.e.pool.lost(next.Farmer, next.FileHash, next.State == sluice.ContractExpired) // offered to another farmer
	}
	a.e.metrics.LiveContracts.Dec()
	a.e.metrics.ContractsClosed.WithLabelValues(next.State.String()).Inc()
	a.e.log.Debug(eventContractClosed, zap.String("farmer", next.Farmer),
		zap.Stringer("file_hash", next.FileHash), zap.Stringer("state", next.State))
	// Poison, not Stop: requests already queued are answered (from the
	// closed state) before the actor goes; later ones find no actor and
	// are answered from the archived record.
	c.Poison(c.Self())
}
