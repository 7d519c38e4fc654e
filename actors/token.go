package actors

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// Authenticate checks a farmer's secret.
type Authenticate struct {
	Raw sluice.RawToken
}

// AuthenticateReply carries the farmer's address on success.
type AuthenticateReply struct {
	Address string
	Err     error
}

// ListContracts asks for the file hashes of the token's live contracts.
type ListContracts struct {
	Raw sluice.RawToken
}

// ListContractsReply lists live contracts.
type ListContractsReply struct {
	Hashes []sluice.FileHash
	Err    error
}

// ChunkRoom asks how many bytes of new contracts the token may take now.
// It reserves nothing: AddContracts checks again.
type ChunkRoom struct {
	Raw sluice.RawToken
}

// ChunkRoomReply is the room left under the address's limit.
type ChunkRoomReply struct {
	Room int64
	Err  error
}

// AddContracts makes contracts of prepared chunks, as many as fit under the
// address's limit at that moment.
type AddContracts struct {
	Raw    sluice.RawToken
	Chunks []sluice.Chunk
}

// AddContractsReply lists the contracts made (committed and running).
type AddContractsReply struct {
	Contracts []sluice.Contract
	Err       error
}

// DeleteToken ends the token and all of its contracts.
type DeleteToken struct {
	Raw sluice.RawToken
}

// DeleteTokenReply is nil Err once the deletion is committed.
type DeleteTokenReply struct {
	Err error
}

// GetStats asks for a token's counters. Unauthenticated: statistics are
// public by farmer id.
type GetStats struct{}

// StatsReply holds a farmer's counters as the token actor keeps them.
type StatsReply struct {
	Farmer     string
	Address    string
	Contracts  int   // live contracts
	Bytes      int64 // their total size
	Heartbeats int64 // valid proofs ever
}

// contractLoaded tells a token about one of its live contracts at start-up.
type contractLoaded struct {
	Hash   sluice.FileHash
	Size   int64
	Proofs int64
}

// proofAccepted tells a token that one of its contracts accepted a proof
// (already committed by the contract).
type proofAccepted struct{}

// contractClosing asks the token to commit a contract's final state together
// with its own, so the proofs the contract counted are never lost or
// counted twice.
type contractClosing struct {
	Contract sluice.Contract
}

type contractClosingReply struct {
	Err error
}

// tokenActor owns one farmer token and its counters.
type tokenActor struct {
	e *Engine
	t sluice.Token

	live       map[sluice.FileHash]int64 // live contracts and their sizes
	liveBytes  int64
	liveProofs int64 // valid proofs counted by the live contracts
}

// newTokenProps is shared by every token actor; see newContractProps.
func newTokenProps(e *Engine) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &tokenActor{e: e, live: map[sluice.FileHash]int64{}} },
		actor.WithSupervisor(entitySupervision(e.log)))
}

func (a *tokenActor) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actor.Started:
		a.start(c)
	case *Authenticate:
		c.Respond(&AuthenticateReply{Address: a.t.Address, Err: a.auth(msg.Raw)})
	case *ListContracts:
		if err := a.auth(msg.Raw); err != nil {
			c.Respond(&ListContractsReply{Err: err})
			return
		}
		hashes := make([]sluice.FileHash, 0, len(a.live))
		for h := range a.live {
			hashes = append(hashes, h)
		}
		c.Respond(&ListContractsReply{Hashes: hashes})
	case *ChunkRoom:
		if err := a.auth(msg.Raw); err != nil {
			c.Respond(&ChunkRoomReply{Err: err})
			return
		}
		c.Respond(&ChunkRoomReply{Room: a.e.ledger.room(a.t.Address, a.e.cfg.MaxBytesPerAddress)})
	case *AddContracts:
		made, err := a.add(msg)
		c.Respond(&AddContractsReply{Contracts: made, Err: err})
	case *DeleteToken:
		err := a.delete(c, msg.Raw)
		c.Respond(&DeleteTokenReply{Err: err})
	case *GetStats:
		c.Respond(&StatsReply{Farmer: a.t.Farmer, Address: a.t.Address, Contracts: len(a.live),
			Bytes: a.liveBytes, Heartbeats: a.t.ClosedProofs + a.liveProofs})
	case *contractLoaded:
		a.track(msg.Hash, msg.Size, msg.Proofs)
	case *proofAccepted:
		a.liveProofs++
	case *contractClosing:
		c.Respond(&contractClosingReply{Err: a.closing(msg.Contract)})
	}
}

func (a *tokenActor) start(c actor.Context) {
	id := entityID(c.Self())
	if st, ok := a.e.boot.LoadAndDelete(tokenIdentity(id)); ok {
		a.t = *st.(*sluice.Token)
		return
	}
	// A restart: the counters of live contracts are rebuilt from them.
	rec, err := a.e.store.Get(context.Background(), sluice.KindToken, id)
	if err != nil {
		panic(fmt.Sprintf("reload token snapshot: %v", err))
	}
	if a.t, err = decodeToken(rec); err != nil {
		panic(fmt.Sprintf("decode token snapshot: %v", err))
	}
	a.live, a.liveBytes, a.liveProofs = map[sluice.FileHash]int64{}, 0, 0
	// The live contracts are counted again from the store. Slow (a scan)
	// but only a failure takes this path; the ledger already holds their
	// bytes, so they are tracked without reserving again.
	err = a.e.store.Live(context.Background(), sluice.KindContract, func(r sluice.Record) error {
		if r.Owner != id {
			return nil
		}
		ct, err := decodeContract(r)
		if err != nil {
			return err
		}
		a.track(ct.FileHash, ct.Size, ct.Proofs)
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("recount token contracts: %v", err))
	}
}

func (a *tokenActor) auth(raw sluice.RawToken) error {
	if a.t.Deleted || !a.t.Matches(raw) {
		return sluice.ErrUnknownToken
	}
	return nil
}

func (a *tokenActor) track(h sluice.FileHash, size, proofs int64) {
	if _, dup := a.live[h]; dup {
		return
	}
	a.live[h] = size
	a.liveBytes += size
	a.liveProofs += proofs
}

func (a *tokenActor) untrack(h sluice.FileHash) {
	size, ok := a.live[h]
	if !ok {
		return
	}
	delete(a.live, h)
	a.liveBytes -= size
	a.e.ledger.release(a.t.Address, size)
}

// add commits the new contracts, then spawns their actors. Chunks the
// farmer already holds, or beyond the address's room, are left out.
func (a *tokenActor) add(msg *AddContracts) ([]sluice.Contract, error) {
	if err := a.auth(msg.Raw); err != nil {
		return nil, err
	}
	var want int64
	for _, ch := range msg.Chunks {
		want += ch.Size
	}
	unused := a.e.ledger.reserve(a.t.Address, want, a.e.cfg.MaxBytesPerAddress)
	defer func() { a.e.ledger.release(a.t.Address, unused) }()
	seen := map[sluice.FileHash]bool{}
	var made []sluice.Contract
	var recs []sluice.Record
	now := a.e.now()
	for _, ch := range msg.Chunks {
		if _, held := a.live[ch.FileHash]; held || seen[ch.FileHash] || ch.Size > unused {
			continue
		}
		seen[ch.FileHash] = true
		var seed [32]byte
		if err := a.e.read(seed[:]); err != nil {
			return nil, fmt.Errorf("challenge seed: %w", err)
		}
		unused -= ch.Size
		ct := sluice.NewContract(a.t.Farmer, ch, a.e.cfg.Scheme, a.e.cfg.Terms, now, seed)
		ct.Version = 1
		made = append(made, ct)
		recs = append(recs, contractRecord(&ct))
	}
	if len(made) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.e.cfg.AskTimeout)
	defer cancel()
	if err := a.e.writer.Commit(ctx, recs...); err != nil {
		a.e.log.Warn(eventCommitFailed, zap.String("kind", "contract"), zap.Error(err))
		for _, ct := range made {
			unused += ct.Size
		}
		return nil, unavailable(err)
	}
	for _, ct := range made {
		a.track(ct.FileHash, ct.Size, 0)
		if err := a.e.spawn(contractIdentity(ct.ID()), &ct); err != nil {
			// Committed but not running: it is loaded at the next start.
			a.e.log.Error(eventActorFailed, zap.String("kind", "contract"), zap.Error(err))
		}
		a.e.metrics.LiveContracts.Inc()
	}
	a.e.log.Debug(eventContractsIssued, zap.String("farmer", a.t.Farmer), zap.Int("count", len(made)))
	return made, nil
}

func (a *tokenActor) closing(ct sluice.Contract) error {
	next := a.t
	next.ClosedProofs += ct.Proofs
	next.Version++
	ctx, cancel := context.WithTimeout(context.Background(), a.e.cfg.AskTimeout)
	defer cancel()
	if err := a.e.writer.Commit(ctx, tokenRecord(&next), contractRecord(&ct)); err != nil {
		return err
	}
	a.t = next
	if _, ok := a.live[ct.FileHash]; ok {
		a.liveProofs -= ct.Proofs
	}
	a.untrack(ct.FileHash)
	return nil
}

func (a *tokenActor) delete(c actor.Context, raw sluice.RawToken) error {
	if err := a.auth(raw); err != nil {
		return err
	}
	next := a.t
	next.Deleted = true
	next.Version++
	ctx, cancel := context.WithTimeout(context.Background(), a.e.cfg.AskTimeout)
	defer cancel()
	if err := a.e.writer.Commit(ctx, tokenRecord(&next)); err != nil {
		return unavailable(err)
	}
	a.t = next
	for h := range a.live {
		a.e.dir.Tell(contractIdentity(sluice.ContractID(a.t.Farmer, h)), &cancelContract{})
		a.untrack(h)
	}
	a.e.metrics.LiveTokens.Dec()
	a.e.log.Info(eventTokenDeleted, zap.String("farmer", a.t.Farmer))
	c.Stop(c.Self())
	return nil
}
