package actors

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// Authenticate checks a farmer's secret; it counts against the token's
// request rate.
type Authenticate struct {
	Raw sluice.RawToken
}

// AuthenticateReply carries the farmer's address on success.
type AuthenticateReply struct {
	Address string
	Err     error
}

// ListContracts asks for the file hashes of the token's live contracts,
// in byte order.
type ListContracts struct {
	Raw sluice.RawToken
}

// ListContractsReply lists live contracts.
type ListContractsReply struct {
	Hashes []sluice.FileHash
	Err    error
}

// ChunkRoom asks how many bytes of new contracts the token may take now,
// from the client address IP (the token moves there if it is new and has
// room). It reserves nothing: the caller holds the room it makes chunks
// for in the ledger itself (a reply lost to a deadline would leak a hold
// the token made), and AddContracts checks again.
type ChunkRoom struct {
	Raw sluice.RawToken
	IP  string
}

// ChunkRoomReply is the room left under the address's limit (Free: as it
// would be without the holds of requests making chunks), the bytes of the
// token's live contracts, and the token's payout address.
type ChunkRoomReply struct {
	Room    int64
	Free    int64
	Held    int64
	Address string
	Err     error
}

// AddContracts makes contracts of prepared chunks, as many as fit under the
// address's limit at that moment. Held is the room the caller holds in the
// ledger for them (ledger.hold), which the token may use besides what it
// reserves: no other request can take it in between. The caller gives its
// hold back itself once the call returns, whatever the outcome; it may
// give up waiting at its deadline, so the token uses the hold only until
// HeldUntil, well before that.
type AddContracts struct {
	Raw       sluice.RawToken
	Chunks    []sluice.Chunk
	Held      int64
	HeldUntil time.Time
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

// GetStats asks for a farmer's statistics. Unauthenticated: statistics
// are public by farmer id.
type GetStats struct{}

// StatsReply holds a farmer's statistics at the moment of asking.
type StatsReply struct {
	FarmerStatus
}

// contractLoaded tells a token about one of its live contracts at start-up.
type contractLoaded struct {
	Hash   sluice.FileHash
	Size   int64
	Proofs int64
	Due    time.Time
}

// proofAccepted tells a token that one of its contracts accepted a proof
// (already committed by the contract); Due is the contract's due time.
type proofAccepted struct {
	Due time.Time
}

// challengeIssued tells a token that one of its contracts issued its next
// challenge, due at Due: the farmer's last_due moves with it.
type challengeIssued struct {
	Due time.Time
}

// contractClosing asks the token to commit a contract's final state together
// with its own, so the proofs the contract counted are never lost or
// counted twice.
type contractClosing struct {
	Contract sluice.Contract
}

type contractClosingReply struct {
	Err error
}

// tokenActor owns one farmer token, its counters and its request rate.
type tokenActor struct {
	e *Engine
	t sluice.Token

	live       map[sluice.FileHash]liveContract
	liveBytes  int64
	liveProofs int64 // valid proofs counted by the live contracts
	// lastDue is the latest due time among its contracts, live or closed:
	// t.LastDue (the closed ones, committed) and the live ones' due times
	// as they are loaded, made and moved. Every token record written
	// carries it (see sluice.Token.LastDue).
	lastDue time.Time
	bucket  sluice.Bucket
	// hashedIP and ipHash cache the keyed hash of the token's IP, which
	// every published status carries (an HMAC per accepted proof before).
	hashedIP, ipHash string
}

// newTokenProps is shared by every token actor; see newContractProps.
// Tokens get the lean mailbox too: a hundred thousand farmers' tokens are
// four fewer objects each for every collection to mark, and in
// alternating runs the node spent no more CPU an answer with it (less,
// within the noise; docs/benchmarks.md).
func newTokenProps(e *Engine) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &tokenActor{e: e, live: map[sluice.FileHash]liveContract{}} },
		actor.WithSupervisor(entitySupervision(e.log)), actor.WithMailbox(newLeanMailbox), actor.WithDispatcher(e.dispatch))
}

func (a *tokenActor) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actor.Started:
		a.start(c)
		a.publish()
	case *Authenticate:
		c.Respond(&AuthenticateReply{Address: a.t.Address, Err: a.request(msg.Raw)})
	case *answerBatch:
		a.forward(c, msg)
	case *ListContracts:
		if err := a.request(msg.Raw); err != nil {
			c.Respond(&ListContractsReply{Err: err})
			return
		}
		// By file hash: the same order on every call, whatever the map's.
		hashes := slices.SortedFunc(maps.Keys(a.live), func(x, y sluice.FileHash) int {
			return bytes.Compare(x[:], y[:])
		})
		c.Respond(&ListContractsReply{Hashes: hashes})
	case *ChunkRoom:
		err := a.request(msg.Raw)
		if err == nil {
			err = a.moveTo(msg.IP)
		}
		if err != nil {
			c.Respond(&ChunkRoomReply{Err: err})
			return
		}
		c.Respond(&ChunkRoomReply{Room: a.e.ledger.room(a.t.Address, a.e.cfg.MaxBytesPerAddress),
			Free: a.e.ledger.free(a.t.Address, a.e.cfg.MaxBytesPerAddress), Held: a.liveBytes, Address: a.t.Address})
	case *AddContracts:
		made, err := a.add(msg)
		c.Respond(&AddContractsReply{Contracts: made, Err: err})
		a.publish()
	case *DeleteToken:
		err := a.delete(c, msg.Raw)
		c.Respond(&DeleteTokenReply{Err: err})
	case *GetStats:
		c.Respond(&StatsReply{FarmerStatus: a.source().at(a.e.now())})
	case *contractLoaded:
		a.track(msg.Hash, msg.Size, msg.Proofs)
		a.sawDue(msg.Due)
		a.publish()
	case *proofAccepted:
		a.liveProofs++
		a.sawDue(msg.Due)
		a.publish()
	case *challengeIssued:
		if a.sawDue(msg.Due) {
			a.publish()
		}
	case *contractClosing:
		c.Respond(&contractClosingReply{Err: a.closing(msg.Contract)})
		a.publish()
	}
}

func (a *tokenActor) start(c actor.Context) {
	id := entityID(c.Self())
	if st, ok := a.e.boot.LoadAndDelete(tokenIdentity(id)); ok {
		a.t = *st.(*sluice.Token)
		a.lastDue = a.t.LastDue // the live contracts add theirs as they load
		return
	}
	// A restart after a failure: resume from the last committed snapshot.
	rec, err := a.e.store.Get(context.Background(), sluice.KindToken, id)
	if err != nil {
		panic(fmt.Sprintf("reload token snapshot: %v", err))
	}
	if a.t, err = decodeToken(rec); err != nil {
		panic(fmt.Sprintf("decode token snapshot: %v", err))
	}
	a.live, a.liveBytes, a.liveProofs = map[sluice.FileHash]liveContract{}, 0, 0
	a.lastDue = a.t.LastDue
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
		a.sawDue(ct.Due)
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("recount token contracts: %v", err))
	}
}

// source is the token's status, for the index and /status/show.
func (a *tokenActor) source() *statusSource {
	if a.hashedIP != a.t.IP || (a.ipHash == "" && a.t.IP != "") {
		a.hashedIP, a.ipHash = a.t.IP, a.e.ipHash(a.t.IP)
	}
	return &statusSource{id: a.t.Farmer, address: a.t.Address, ipHash: a.ipHash,
		location: a.t.Location, uptime: a.t.Uptime, heartbeats: a.t.ClosedProofs + a.liveProofs,
		contracts: len(a.live), size: a.liveBytes, lastDue: a.lastDue}
}

func (a *tokenActor) publish() {
	if !a.t.Deleted {
		a.e.status.put(a.source())
	}
}

// sawDue notes a contract's due time; it reports whether last_due moved.
func (a *tokenActor) sawDue(due time.Time) bool {
	if !due.After(a.lastDue) {
		return false
	}
	a.lastDue = due
	return true
}

func (a *tokenActor) auth(raw sluice.RawToken) error {
	if a.t.Deleted || !a.t.Matches(raw) {
		return sluice.ErrUnknownToken
	}
	return nil
}

// answerBatch is a farmer's proofs, sent to its token: the token
// authenticates the request and hands each item to its contract. Its
// outcome goes on Done as an item of Index -1, after every item was
// handed on: an error ends the request, nil says every item is on its
// way; an item whose contract has no actor comes back as errNoActor.
type answerBatch struct {
	Raw   sluice.RawToken
	Items []answerItem
	Done  chan<- answerDone // room for every item and the outcome
}

func (a *tokenActor) forward(c actor.Context, b *answerBatch) {
	if err := a.request(b.Raw); err != nil {
		b.Done <- answerDone{Index: -1, Err: err}
		return
	}
	for i := range b.Items {
		it := &b.Items[i]
		it.token = c.Self()
		if !a.send(c, it) {
			b.Done <- answerDone{Index: it.Index, Err: errNoActor}
		}
	}
	b.Done <- answerDone{Index: -1}
}

// liveContract is what a token keeps of each of its live contracts.
type liveContract struct {
	size int64
	// pid is the contract's actor, once an answer has looked it up: the
	// farmer's later answers reach it without a lookup in the registry of
	// every actor of the node (a tenth of the node's CPU on batches of
	// answers, mostly cache misses). It goes with the entry when the
	// contract closes, which the token hears of before the actor stops. A
	// PID keeps the actor's process and drops it once the actor is dead,
	// so an actor stopped otherwise (its supervisor gave up) gets nothing
	// more in its mailbox: what is sent goes to the dead letters, and the
	// waiting request finds the actor gone, as it finds any actor that
	// stops with messages queued.
	pid *actor.PID
}

// send hands an answer to its contract's actor; false: it has none.
func (a *tokenActor) send(c actor.Context, it *answerItem) bool {
	lc, tracked := a.live[it.hash]
	if tracked && lc.pid != nil {
		c.Send(lc.pid, it)
		return true
	}
	pid, ok := a.e.dir.Resolve(contractIdentity(it.id))
	if !ok {
		return false
	}
	if tracked {
		lc.pid = pid
		a.live[it.hash] = lc
	}
	c.Send(pid, it)
	return true
}

// request authenticates one API request and applies the token's rate limit.
func (a *tokenActor) request(raw sluice.RawToken) error {
	if err := a.auth(raw); err != nil {
		return err
	}
	if ok, wait := a.bucket.Allow(a.e.now(), a.e.cfg.TokenRate, a.e.cfg.TokenBurst); !ok {
		return &sluice.LimitedError{RetryAfter: wait}
	}
	return nil
}

// moveTo follows a farmer to a new client address when that address has
// room for one more token, as the original node did on /chunk.
func (a *tokenActor) moveTo(ip string) error {
	if ip == "" || ip == a.t.IP {
		return nil
	}
	if err := a.e.ips.move(a.t.IP, ip, a.e.cfg.MaxTokensPerIP); err != nil {
		return err
	}
	next := a.t
	next.IP = ip
	next.Location = a.e.locate(ip)
	next.LastDue = a.lastDue
	next.Version++
	if err := a.e.writer.CommitBy(a.e.commitBy(), tokenRecord(&next)); err != nil {
		a.e.ips.move(ip, a.t.IP, 0) // undo
		return unavailable(err)
	}
	a.t = next
	a.publish()
	return nil
}

func (a *tokenActor) track(h sluice.FileHash, size, proofs int64) {
	if _, dup := a.live[h]; dup {
		return
	}
	a.live[h] = liveContract{size: size}
	a.liveBytes += size
	a.liveProofs += proofs
}

func (a *tokenActor) untrack(h sluice.FileHash) {
	lc, ok := a.live[h]
	if !ok {
		return
	}
	delete(a.live, h)
	a.liveBytes -= lc.size
	a.e.ledger.release(a.t.Address, lc.size)
}

// add commits the new contracts (with the token when its uptime starts a
// new period), then spawns their actors. Chunks the farmer already holds,
// or beyond the address's room, are left out.
func (a *tokenActor) add(msg *AddContracts) ([]sluice.Contract, error) {
	if err := a.auth(msg.Raw); err != nil {
		return nil, err
	}
	var want int64
	for _, ch := range msg.Chunks {
		want += ch.Size
	}
	callers := msg.Held
	if !time.Now().Before(msg.HeldUntil) {
		callers = 0 // the caller may have given up, and its hold back
	}
	extra := a.e.ledger.reserve(a.t.Address, max(0, want-callers), a.e.cfg.MaxBytesPerAddress)
	budget := callers + extra
	unused := budget
	defer func() {
		// The ledger counts extra for this call: make it count the
		// contracts' bytes instead (some of them may be in the caller's
		// hold, which the caller gives back).
		if used := budget - unused; used > extra {
			a.e.ledger.add(a.t.Address, used-extra)
		} else {
			a.e.ledger.release(a.t.Address, extra-used)
		}
	}()
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
		// A contract's id is its farmer and chunk: one archived earlier
		// under the same id (a piece handed to this farmer again) holds a
		// higher version than 1, and the stores keep the higher version.
		// Versions starting at the clock are above any earlier contract's.
		ct.Version = uint64(now.UnixNano())
		made = append(made, ct)
		recs = append(recs, contractRecord(&ct))
	}
	if len(made) == 0 {
		return nil, nil
	}
	next := a.t
	next.LastDue = a.lastDue
	if len(a.live) == 0 {
		next.Uptime.Rise(now)
		next.Version++
		recs = append(recs, tokenRecord(&next))
	}
	if err := a.e.writer.CommitBy(a.e.commitBy(), recs...); err != nil {
		a.e.log.Warn(eventCommitFailed, zap.String("kind", "contract"), zap.Error(err))
		for _, ct := range made {
			unused += ct.Size
		}
		return nil, unavailable(err)
	}
	a.t = next
	for _, ct := range made {
		a.track(ct.FileHash, ct.Size, 0)
		a.sawDue(ct.Due)
		if err := a.e.spawn(contractIdentity(ct.ID()), &ct); err != nil {
			// Committed but not running: it is loaded at the next start.
			a.e.log.Error(eventActorFailed, zap.String("kind", "contract"), zap.Error(err))
		}
		a.e.metrics.LiveContracts.Inc()
	}
	a.e.log.Debug(eventContractsIssued, zap.String("farmer", a.t.Farmer), zap.Int("count", len(made)))
	return made, nil
}

// closing folds a closed contract into the token: its proofs move to the
// token's own count and, if it was the last live one, the up period ends
// when the contract closed. Both records commit together.
func (a *tokenActor) closing(ct sluice.Contract) error {
	next := a.t
	next.ClosedProofs += ct.Proofs
	// The closed contract's due time is durable from here on: with no
	// live contract left, nothing else would bring it back at start-up.
	next.LastDue = a.lastDue
	if ct.Due.After(next.LastDue) {
		next.LastDue = ct.Due
	}
	_, tracked := a.live[ct.FileHash]
	if tracked && len(a.live) == 1 {
		next.Uptime.Fall(ct.Closed)
	}
	next.Version++
	if err := a.e.writer.CommitBy(a.e.commitBy(), tokenRecord(&next), contractRecord(&ct)); err != nil {
		return err
	}
	a.t = next
	a.lastDue = next.LastDue
	if tracked {
		a.liveProofs -= ct.Proofs
	}
	a.untrack(ct.FileHash)
	return nil
}

func (a *tokenActor) delete(c actor.Context, raw sluice.RawToken) error {
	if err := a.auth(raw); err != nil { // a deleted token fails here too
		return err
	}
	next := a.t
	next.Deleted = true
	next.LastDue = a.lastDue
	next.Uptime.Fall(a.e.now())
	next.Version++
	if err := a.e.writer.CommitBy(a.e.commitBy(), tokenRecord(&next)); err != nil {
		return unavailable(err)
	}
	a.t = next
	for h := range a.live {
		a.e.dir.Tell(contractIdentity(sluice.ContractID(a.t.Farmer, h)), &cancelContract{})
		a.untrack(h)
	}
	a.e.ips.release(a.t.IP)
	a.e.status.remove(a.t.Farmer)
	a.e.metrics.LiveTokens.Dec()
	a.e.log.Info(eventTokenDeleted, zap.String("farmer", a.t.Farmer))
	c.Poison(c.Self()) // queued requests are answered ("Nonexistent token.") first
	return nil
}
