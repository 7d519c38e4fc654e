package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/ctxio"
	"github.com/sluicehq/sluice/proof"
)

// fanOut bounds how many actors one batch request talks to at once.
const fanOut = 64

// NewToken makes a token for a payout address (already validated and, when
// required, proven by signature). It enforces the whitelist, refuses a
// signed message used before, and counts the token against its client
// address. The token is committed before it is returned, together with
// the signature it used.
func (e *Engine) NewToken(ctx context.Context, req TokenRequest) (sluice.RawToken, error) {
	raw, err := e.newToken(ctx, req)
	if err != nil && sluice.Kind(err) != sluice.ErrUnavailable {
		e.logDenied(req, err)
	}
	return raw, err
}

func (e *Engine) newToken(ctx context.Context, req TokenRequest) (sluice.RawToken, error) {
	var raw sluice.RawToken
	if err := e.checkWhitelist(ctx, req.Address); err != nil {
		return raw, err
	}
	var recs []sluice.Record
	if req.Signed {
		id := SignatureID(req.Address, req.Message)
		release, err := e.reserveSignature(ctx, id)
		if err != nil {
			return raw, err
		}
		defer release()
		recs = append(recs, sluice.Record{Kind: sluice.KindSignature, ID: id, Version: 1, Live: true, State: []byte(req.Address)})
	}
	if err := e.ips.take(req.IP, e.cfg.MaxTokensPerIP); err != nil {
		return raw, err
	}
	if err := e.read(raw[:]); err != nil {
		e.ips.release(req.IP)
		return raw, fmt.Errorf("token secret: %w", err)
	}
	t := sluice.NewToken(raw, req.Address, req.IP, e.now())
	t.Location = e.locate(req.IP)
	t.Version = 1
	if err := e.writer.Commit(ctx, append(recs, tokenRecord(&t))...); err != nil {
		e.ips.release(req.IP)
		return raw, unavailable(err)
	}
	if err := e.spawn(tokenIdentity(t.Farmer), &t); err != nil {
		return raw, err
	}
	e.metrics.LiveTokens.Inc()
	e.log.Info(eventTokenCreated, zap.String("farmer", t.Farmer), zap.String("address", req.Address))
	return raw, nil
}

// Status lists farmers' statistics from the status index (at most one
// StatusRefresh stale).
func (e *Engine) Status(q StatusQuery) ([]FarmerStatus, error) { return e.status.list(q) }

// Authenticate checks the token and returns its payout address.
func (e *Engine) Authenticate(ctx context.Context, raw sluice.RawToken) (string, error) {
	res, err := e.askToken(ctx, raw, &Authenticate{Raw: raw})
	if err != nil {
		return "", err
	}
	r := res.(*AuthenticateReply)
	return r.Address, r.Err
}

// Stats returns one farmer's statistics by farmer id, computed now by its
// token actor with the same definitions as the list.
func (e *Engine) Stats(ctx context.Context, farmer string) (FarmerStatus, error) {
	res, err := e.dir.Ask(ctx, tokenIdentity(farmer), &GetStats{})
	if errors.Is(err, errNoActor) {
		return FarmerStatus{}, &sluice.Error{Kind: sluice.ErrNotFound, Message: sluice.MsgNonexistentFarmer}
	}
	if err != nil {
		return FarmerStatus{}, err
	}
	return res.(*StatsReply).FarmerStatus, nil
}

// DeleteToken ends the token and its contracts.
func (e *Engine) DeleteToken(ctx context.Context, raw sluice.RawToken) error {
	res, err := e.askToken(ctx, raw, &DeleteToken{Raw: raw})
	if err != nil {
		return err
	}
	return res.(*DeleteTokenReply).Err
}

func (e *Engine) askToken(ctx context.Context, raw sluice.RawToken, msg any) (any, error) {
	res, err := e.dir.Ask(ctx, tokenIdentity(raw.FarmerID()), msg)
	if errors.Is(err, errNoActor) {
		return nil, sluice.ErrUnknownToken
	}
	return res, err
}

// Chunks hands out new prototype contracts filling up to want bytes: the
// token says how much room its address has, it is held in the ledger
// while the chunks are generated here (outside any actor: it is CPU
// work), and the token commits and starts their contracts.
func (e *Engine) Chunks(ctx context.Context, raw sluice.RawToken, ip string, want int64) ([]sluice.Contract, error) {
	res, err := e.askToken(ctx, raw, &ChunkRoom{Raw: raw, IP: ip})
	if err != nil {
		return nil, err
	}
	r := res.(*ChunkRoomReply)
	if r.Err != nil {
		return nil, r.Err
	}
	// Hold the room while its chunks are made, so that parallel requests
	// of one address do not each make chunks for the same room (seconds
	// of CPU for a gigabyte, all but one lot of it refused at the end).
	// AddContracts may use the hold; it is given back when this returns.
	hold := e.ledger.hold(r.Address, min(want, r.Room), e.cfg.MaxBytesPerAddress)
	defer func() { e.ledger.unhold(r.Address, hold) }()
	// Pieces of uploaded files first, then prototype chunks for the rest
	// but for room the farmer is making for pieces it could not take yet.
	// What the farmer could take is judged without other requests' holds,
	// which last only while they make their chunks.
	farmer := raw.FarmerID()
	room := hold
	chunks := e.pool.take(farmer, room, e.cfg.MaxChunksPerRequest, e.now())
	for _, ch := range chunks {
		room -= ch.Size
	}
	room -= e.pool.reserved(farmer, room, r.Held+min(want, r.Free), e.now())
	maxProto := 0
	if e.cfg.MaxChunksPerRequest > 0 {
		maxProto = e.cfg.MaxChunksPerRequest - len(chunks)
	}
	var plan []int64
	if e.cfg.MaxChunksPerRequest == 0 || maxProto > 0 {
		plan = sluice.ChunkPlan(room, e.cfg.ChunkSizes, maxProto)
	}
	// Keep held only what this request hands out (its chunks per request
	// may fill much less than its room): the rest is for other requests.
	var need int64
	for _, ch := range chunks {
		need += ch.Size
	}
	for _, size := range plan {
		need += size
	}
	if need < hold {
		e.ledger.unhold(r.Address, hold-need)
		hold = need
	}
	for _, size := range plan {
		ch, err := e.seededChunk(ctx, size)
		if err != nil {
			e.returnChunks(farmer, chunks, nil)
			return nil, err
		}
		chunks = append(chunks, ch)
	}
	if len(chunks) == 0 {
		return nil, nil
	}
	// The token may use the hold while this still waits for it: until a
	// second before the wait's deadline.
	res, err = e.askToken(ctx, raw, &AddContracts{Raw: raw, Chunks: chunks, Held: hold, HeldUntil: e.waitBy(ctx).Add(-time.Second)})
	if err != nil {
		e.returnChunks(farmer, chunks, nil)
		return nil, err
	}
	a := res.(*AddContractsReply)
	e.returnChunks(farmer, chunks, a.Contracts)
	return a.Contracts, a.Err
}

// waitBy is when a wait on actors for ctx's request ends: ctx's deadline,
// or AskTimeout from now when it has none.
func (e *Engine) waitBy(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(e.cfg.AskTimeout)
}

// returnChunks gives the pool back the uploaded pieces taken for farmer
// that did not become contracts.
func (e *Engine) returnChunks(farmer string, taken []sluice.Chunk, made []sluice.Contract) {
	for _, ch := range taken {
		if ch.Quote == "" {
			continue
		}
		if !slices.ContainsFunc(made, func(c sluice.Contract) bool { return c.FileHash == ch.FileHash }) {
			e.pool.lost(farmer, ch.FileHash, false)
		}
	}
}

// ChunkSource returns where the bytes of an uploaded chunk held by the
// token are: the stored file's CID, the offset and the size. Only a token
// with a live contract on the chunk may download it.
func (e *Engine) ChunkSource(ctx context.Context, raw sluice.RawToken, h sluice.FileHash) (string, int64, int64, error) {
	if _, err := e.Authenticate(ctx, raw); err != nil {
		return "", 0, 0, err
	}
	res, err := e.askContract(ctx, raw.FarmerID(), h, &GetContract{})
	if err != nil {
		return "", 0, 0, err
	}
	c := res.(*ContractReply).Contract
	if err := c.Err(); err != nil {
		return "", 0, 0, err // closed, its actor not gone yet
	}
	if c.Source == "" {
		return "", 0, 0, &sluice.Error{Kind: sluice.ErrNotFound, Message: "This chunk is a prototype chunk: generate it from its seed."}
	}
	return c.Source, c.Offset, c.Size, nil
}

// seededChunk generates a prototype chunk of the given size from a fresh
// seed, and its tag, in one pass over the bytes. That is CPU work of up to
// a second or so for the largest sizes: at most one chunk per CPU is made
// at a time, node-wide, and the work stops once ctx ends (the request's
// deadline passed or its client left), as unavailable.
func (e *Engine) seededChunk(ctx context.Context, size int64) (sluice.Chunk, error) {
	select {
	case e.chunkMakers <- struct{}{}:
		defer func() { <-e.chunkMakers }()
	case <-ctx.Done():
		return sluice.Chunk{}, unavailable(fmt.Errorf("making a chunk: %w", context.Cause(ctx)))
	}
	var b [16]byte
	if err := e.read(b[:]); err != nil {
		return sluice.Chunk{}, fmt.Errorf("chunk seed: %w", err)
	}
	seed := hex.EncodeToString(b[:])
	h := sha256.New()
	src := ctxio.Reader(ctx, proof.NewSeeded(seed, size).NewReader())
	tag, err := proof.Encode(io.TeeReader(src, h), size, e.cfg.Scheme.Params().LeafSize)
	if err := ctx.Err(); err != nil {
		return sluice.Chunk{}, unavailable(fmt.Errorf("making a chunk: %w", context.Cause(ctx)))
	}
	if err != nil {
		return sluice.Chunk{}, fmt.Errorf("encode chunk: %w", err)
	}
	ch := sluice.Chunk{Size: size, Seed: seed, Tag: tag}
	h.Sum(ch.FileHash[:0])
	return ch, nil
}

// ChallengeItem is one contract's answer to a challenge query.
type ChallengeItem struct {
	Hash sluice.FileHash
	ChallengeReply
}

// Challenge returns the current challenge of one contract.
func (e *Engine) Challenge(ctx context.Context, raw sluice.RawToken, h sluice.FileHash) (ChallengeReply, error) {
	if _, err := e.Authenticate(ctx, raw); err != nil {
		return ChallengeReply{}, err
	}
	return e.challenge(ctx, raw.FarmerID(), h), nil
}

func (e *Engine) challenge(ctx context.Context, farmer string, h sluice.FileHash) ChallengeReply {
	res, err := e.askContract(ctx, farmer, h, &GetChallenge{})
	if err != nil {
		return ChallengeReply{Err: err}
	}
	return *res.(*ChallengeReply)
}

// Challenges returns the current challenges of the listed contracts, or of
// all the token's live contracts when hashes is nil. Per-contract problems
// are items, not a failed call.
func (e *Engine) Challenges(ctx context.Context, raw sluice.RawToken, hashes []sluice.FileHash) ([]ChallengeItem, error) {
	if hashes == nil {
		res, err := e.askToken(ctx, raw, &ListContracts{Raw: raw})
		if err != nil {
			return nil, err
		}
		r := res.(*ListContractsReply)
		if r.Err != nil {
			return nil, r.Err
		}
		hashes = r.Hashes
	} else if _, err := e.Authenticate(ctx, raw); err != nil {
		return nil, err
	}
	farmer := raw.FarmerID()
	items := make([]ChallengeItem, len(hashes))
	parallel(len(hashes), func(i int) {
		items[i] = ChallengeItem{Hash: hashes[i], ChallengeReply: e.challenge(ctx, farmer, hashes[i])}
	})
	return items, nil
}

// Answer submits a proof for one contract.
func (e *Engine) Answer(ctx context.Context, raw sluice.RawToken, h sluice.FileHash, p []byte) error {
	_, err := e.AnswerReusable(ctx, raw, h, p)
	return err
}

// AnswerReusable is Answer for a caller that reuses the proof's memory:
// see AnswersReusable.
func (e *Engine) AnswerReusable(ctx context.Context, raw sluice.RawToken, h sluice.FileHash, p []byte) (reusable bool, err error) {
	errs, reusable, err := e.AnswersReusable(ctx, raw, []AnswerItem{{Hash: h, Proof: p}})
	if err != nil {
		return reusable, err
	}
	return reusable, errs[0]
}

// AnswerItem is one proof of a batch.
type AnswerItem struct {
	Hash  sluice.FileHash
	Proof []byte
}

// Answers submits a batch of proofs; the result holds one error (nil for
// accepted) per item, in order. The batch goes to the farmer's token,
// which authenticates it and hands every item to its contract's actor at
// once; the actors put their results on one channel, without a future or
// a goroutine each, and verify and commit in parallel (their commits
// share the writer's transactions).
func (e *Engine) Answers(ctx context.Context, raw sluice.RawToken, items []AnswerItem) ([]error, error) {
	errs, _, err := e.AnswersReusable(ctx, raw, items)
	return errs, err
}

// AnswersReusable is Answers for a caller that reuses the memory of the
// items' proofs (the HTTP handlers pool request bodies). reusable is true
// when no actor holds an item's Proof any more; it is false when one still
// may, because the wait was cut short while items were out, and then the
// memory must be left to the garbage collector.
func (e *Engine) AnswersReusable(ctx context.Context, raw sluice.RawToken, items []AnswerItem) (errs []error, reusable bool, err error) {
	farmer := raw.FarmerID()
	// One deadline for the batch, which also bounds the start of the
	// contracts' commits. Neither it nor the caller leaving is waited on
	// with a timer or ctx.Done (which would arm the caller's deadline
	// timer, see http.Server.bounded): answers are thousands a second, and
	// a wait looks at both at every shared tick instead.
	by := e.waitBy(ctx)
	timeout := time.Until(by)
	done := make(chan answerDone, len(items)+1)
	batch := &answerBatch{Raw: raw, Items: make([]answerItem, len(items)), Done: done}
	for i, it := range items {
		batch.Items[i] = answerItem{Proof: it.Proof, Index: i, Done: done, By: by,
			id: sluice.ContractID(farmer, it.Hash), hash: it.Hash}
	}
	token := tokenIdentity(farmer)
	if !e.dir.Tell(token, batch) {
		return nil, true, sluice.ErrUnknownToken
	}
	w := &batchWait{e: e, ctx: ctx, batch: batch, done: done,
		errs: make([]error, len(items)), answered: make([]bool, len(items)), left: len(items)}
	// An actor that stops drops what is left in its mailbox unanswered (see
	// localDirectory.Ask): a token gone before it handed the items on is
	// an unknown token; an item whose contract is gone is answered from
	// the archived record. Which actors are gone is looked at before the
	// results are drained: an actor may answer and then stop.
	for !w.authenticated || w.left > 0 {
		select {
		case d := <-done:
			if err := w.take(d); err != nil {
				return nil, true, err // refused: no item was handed on
			}
		case <-e.gone.wait():
			if ctx.Err() != nil || !time.Now().Before(by) {
				// The deadline passed, or the caller left: what has
				// arrived stands and the rest is unavailable.
				errs, err := w.giveUp(timeout)
				return errs, false, err
			}
			tokenGone := !w.authenticated && !e.dir.Alive(token)
			var gone []int
			if w.ticks++; w.ticks%goneEvery == 0 {
				gone = w.gone()
			}
			if err := w.drain(); err != nil {
				return nil, true, err
			}
			if tokenGone && !w.authenticated {
				// It may have handed some items on before it stopped.
				return nil, false, sluice.ErrUnknownToken
			}
			for _, i := range gone {
				w.archive(i)
			}
		}
	}
	// Every item was answered by its actor, or its actor is gone: none
	// will read its proof again.
	return w.errs, true, nil
}

// batchWait gathers the results of one Answers call from its channel.
type batchWait struct {
	e             *Engine
	ctx           context.Context
	batch         *answerBatch
	done          <-chan answerDone
	errs          []error // by item
	answered      []bool  // by item: its result is in errs
	left          int     // items not answered
	authenticated bool    // the token handed the items on
	ticks         int     // shared ticks waited
}

// goneEvery is how many shared ticks pass between two looks at whether
// the contracts of a batch's items are gone. A look costs a lookup in the
// registry of every actor for each item not answered yet, mostly cache
// misses (a twentieth of the node's CPU on batches of 100 answers when
// it looked at every tick), and a contract stopping with answers queued
// is rare: once a period of a few ticks is soon enough to notice it.
const goneEvery = 4

// take records one result; it returns the token's refusal, if that is
// what d is.
func (w *batchWait) take(d answerDone) error {
	switch {
	case d.Index < 0:
		w.authenticated = true
		return d.Err
	case errors.Is(d.Err, errNoActor):
		w.archive(d.Index)
	case !w.answered[d.Index]:
		w.answered[d.Index] = true
		w.left--
		w.errs[d.Index] = d.Err
	}
	return nil
}

// drain takes every result already sent, so that nothing after it judges
// an item whose answer has arrived.
func (w *batchWait) drain() error {
	for {
		select {
		case d := <-w.done:
			if err := w.take(d); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// gone lists the items handed on whose contract's actor has stopped.
func (w *batchWait) gone() []int {
	if !w.authenticated {
		return nil
	}
	var out []int
	for i, it := range w.batch.Items {
		if !w.answered[i] && !w.e.dir.Alive(contractIdentity(it.id)) {
			out = append(out, i)
		}
	}
	return out
}

// archive answers item i from its contract's archived record.
func (w *batchWait) archive(i int) {
	if w.answered[i] {
		return
	}
	w.answered[i] = true
	w.left--
	w.errs[i] = w.e.archived(w.ctx, w.batch.Items[i].id)
}

// giveUp ends a wait cut short: results already sent stand, the items
// still out are unavailable (their contracts may yet commit them), and a
// batch the token had not let in is unavailable whole.
func (w *batchWait) giveUp(timeout time.Duration) ([]error, error) {
	if err := w.drain(); err != nil {
		return nil, err
	}
	if !w.authenticated {
		return nil, fmt.Errorf("%w: actor %s did not answer in %s", sluice.ErrUnavailable, sluice.KindToken, timeout)
	}
	for i := range w.errs {
		if !w.answered[i] {
			w.errs[i] = fmt.Errorf("%w: actor %s did not answer in %s", sluice.ErrUnavailable, sluice.KindContract, timeout)
		}
	}
	return w.errs, nil
}

// askContract sends to a live contract's actor; a contract without one is
// answered from its archived record.
func (e *Engine) askContract(ctx context.Context, farmer string, h sluice.FileHash, msg any) (any, error) {
	id := sluice.ContractID(farmer, h)
	res, err := e.dir.Ask(ctx, contractIdentity(id), msg)
	if !errors.Is(err, errNoActor) {
		return res, err
	}
	return nil, e.archived(ctx, id)
}

// archived answers for a contract without an actor from its record: not
// found, or the error of its final state. A live record without an actor
// is a contract being started or stopped.
func (e *Engine) archived(ctx context.Context, id string) error {
	rec, err := e.store.Get(ctx, sluice.KindContract, id)
	if errors.Is(err, sluice.ErrNotFound) {
		return sluice.ErrContractNotFound
	}
	if err != nil {
		return unavailable(err)
	}
	c, err := decodeContract(rec)
	if err != nil {
		return fmt.Errorf("decode contract %s: %w", id, err)
	}
	if err := c.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: contract is not running yet", sluice.ErrUnavailable)
}

// parallel runs fn(0..n-1) with at most fanOut at once.
func parallel(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, fanOut)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}
