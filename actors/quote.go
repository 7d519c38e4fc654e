package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/microservice"
	"github.com/sluicehq/sluice/proof"
)

// StartUpload hands a quote its files (already durable in the temporary
// store's pending area, checked against the quoted lengths, not yet
// hashed) with the signed request that sent them; sealing, payment and
// storage then proceed inside the actor. The commit of this message is the
// upload's acknowledgement; Engine.StartUpload adds the owner's nonce
// record, spending the request's nonce, to that same commit.
type StartUpload struct {
	Files     []sluice.StoredFile
	Nonce     string
	Signature string

	spend *sluice.Record // the nonce record committed with the files
}

// StartUploadReply is nil Err once the upload is committed.
type StartUploadReply struct {
	Err error
}

// GetQuote asks a quote actor for its state.
type GetQuote struct{}

// QuoteReply is a copy of the quote.
type QuoteReply struct {
	Quote sluice.Quote
	// HandedOff: the files were handed to the quote's microservice, which
	// now owns the upload (see quoteState).
	HandedOff bool
}

// SetQuoteStatus records a status read from the quote's microservice; the
// reply is a SetQuoteStatusReply.
type SetQuoteStatus struct {
	Status int
}

// SetQuoteStatusReply answers SetQuoteStatus once the status is recorded
// (or was not: Err).
type SetQuoteStatusReply struct {
	Err error
}

// FailQuote ends a quote with a failure status (e.g. 402 when the upload
// exceeded the quoted lengths).
type FailQuote struct {
	Status int
}

// Timer and worker messages.
type (
	quoteExpired  struct{}
	quoteProgress struct{} // look at the status and do the next step
	paymentResult struct {
		status int // the next status
		rawTx  []byte
		txHash string
		err    error
	}
	filesSealed struct {
		cids []string // one per file, in order
		err  error
	}
	chunksCut struct {
		chunks []sluice.Chunk
		err    error
	}
	chunksHeld    struct{}
	storageEnded  struct{} // the end of a built-in quote's storage period
	backendResult struct{ err error }
)

// quoteActor owns one quote: its status, its expiry timer, and the payment
// and storage work, which runs on worker goroutines that report back. It
// stops once the quote is final (stopIfFinal).
type quoteActor struct {
	e       *Engine
	q       quoteState
	timer   scheduler.CancelFunc
	retry   scheduler.CancelFunc // the next step after a failed commit
	cancel  context.CancelFunc   // stops the worker in flight
	working bool
	stopped bool // stopping, or told to
}

func newQuoteProps(e *Engine) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &quoteActor{e: e} },
		actor.WithSupervisor(entitySupervision(e.log)), actor.WithMailbox(actor.UnboundedLockfree()),
		actor.WithDispatcher(e.dispatch))
}

func (a *quoteActor) Receive(c actor.Context) {
	defer a.stopIfFinal(c)
	switch msg := c.Message().(type) {
	case *actor.Started:
		a.start(c)
	case *actor.Stopping, *actor.Restarting:
		a.stopped = true
		if a.timer != nil {
			a.timer()
		}
		if a.retry != nil {
			a.retry()
		}
		if a.cancel != nil {
			a.cancel()
		}
	case *GetQuote:
		a.expireIfDue(c)
		c.Respond(&QuoteReply{Quote: a.q.Quote, HandedOff: a.q.HandedOff})
	case *StartUpload:
		c.Respond(&StartUploadReply{Err: a.startUpload(c, msg)})
	case *SetQuoteStatus:
		c.Respond(&SetQuoteStatusReply{Err: a.relayed(c, msg.Status)})
	case *FailQuote:
		if !sluice.QuoteFinal(a.q.Status) {
			a.set(c, func(q *quoteState) { q.Status = msg.Status })
		}
		c.Respond(&StartUploadReply{})
	case *quoteExpired:
		a.expireIfDue(c)
	case *quoteProgress:
		a.progress(c)
	case *paymentResult:
		a.working = false
		if msg.err != nil {
			a.e.log.Warn(eventQuotePayment, zap.String("quote", a.q.ID), zap.Error(msg.err))
		}
		a.set(c, func(q *quoteState) {
			q.Status = msg.status
			if msg.txHash != "" {
				q.TxHash, q.RawTx = msg.txHash, msg.rawTx
			}
		})
		a.progress(c)
	case *filesSealed:
		a.working = false
		a.sealed(c, msg)
	case *chunksCut:
		a.working = false
		if msg.err != nil {
			a.e.log.Error(eventQuoteStorage, zap.String("quote", a.q.ID), zap.Error(msg.err))
			a.set(c, func(q *quoteState) { q.Status = sluice.StatusInternalError })
			return
		}
		if len(msg.chunks) == 0 {
			// Files without a byte (refused at upload since; a record
			// from before may hold some): nothing to place on farmers, so
			// the upload is complete. Cutting again would find nothing
			// again, for ever.
			a.set(c, func(q *quoteState) { q.Status = sluice.StatusDone })
			return
		}
		if a.set(c, func(q *quoteState) { q.Chunks = msg.chunks }) {
			a.progress(c)
		}
	case *chunksHeld:
		a.doneIfHeld(c)
	case *storageEnded:
		a.storageEnded(c)
	case *backendResult:
		a.working = false
		if msg.err != nil {
			a.e.log.Warn(eventQuoteStorage, zap.String("quote", a.q.ID), zap.Error(msg.err))
			a.set(c, func(q *quoteState) { q.Status = sluice.StatusBackendFailed })
			return
		}
		// From here on the microservice owns the upload: getStatus asks
		// it, and a restart neither pays nor uploads again.
		a.set(c, func(q *quoteState) { q.Status, q.HandedOff = sluice.StatusUploading, true })
	}
}

// relayed records a status the quote's microservice reported. Only a
// handed-off quote takes one, and not once it is final; a final status
// ends its need of the temporary files (set, blobNeeds).
func (a *quoteActor) relayed(c actor.Context, status int) error {
	if !a.q.HandedOff || sluice.QuoteFinal(a.q.Status) || status == a.q.Status {
		return nil
	}
	if !a.set(c, func(q *quoteState) { q.Status = status }) {
		return fmt.Errorf("%w: could not record the status", sluice.ErrUnavailable)
	}
	return nil
}

// stopIfFinal stops the actor once its quote is final and no worker is in
// flight: nothing can happen to the quote any more (every message leaves a
// final status as it is). Requests already queued are answered first;
// later ones find no actor and are answered from the quote's record
// (Engine.quoteState), as for the final quotes start-up spawns no actor
// for. A built-in quote at 300 waiting for its pieces' farmers is not
// final, and keeps its actor.
func (a *quoteActor) stopIfFinal(c actor.Context) {
	if a.stopped || a.working || !sluice.QuoteFinal(a.q.Status) {
		return
	}
	a.stopped = true
	c.Poison(c.Self())
}

func (a *quoteActor) start(c actor.Context) {
	id := entityID(c.Self())
	if st, ok := a.e.boot.LoadAndDelete(quoteIdentity(id)); ok {
		a.q = *st.(*quoteState)
	} else {
		rec, err := a.e.store.Get(context.Background(), sluice.KindQuote, id)
		if err != nil {
			panic(fmt.Sprintf("reload quote snapshot: %v", err))
		}
		if a.q, err = decodeQuote(rec); err != nil {
			panic(fmt.Sprintf("decode quote snapshot: %v", err))
		}
	}
	if a.waiting() {
		a.timer = a.e.sched.SendOnce(a.q.Expires.Sub(a.e.now()), c.Self(), &quoteExpired{})
	}
	a.progress(c)
}

// set commits a change to the quote, then applies it. It reports whether
// the change was committed (a failed commit is retried by the next step).
// Records in with are committed in the same transaction.
func (a *quoteActor) set(c actor.Context, change func(*quoteState), with ...sluice.Record) bool {
	next := a.q
	change(&next)
	next.Version++
	if err := a.e.writer.CommitBy(a.e.commitBy(), append([]sluice.Record{quoteRecord(&next)}, with...)...); err != nil {
		a.e.log.Warn(eventCommitFailed, zap.String("kind", "quote"), zap.Error(err))
		if a.retry != nil {
			a.retry()
		}
		a.retry = a.e.sched.SendOnce(time.Second, c.Self(), &quoteProgress{})
		return false
	}
	if next.Status != a.q.Status {
		a.e.log.Info(eventQuoteStatus, zap.String("quote", next.ID), zap.Int("status", next.Status))
	}
	a.q = next
	a.e.needFiles(&a.q.Quote)
	return true
}

// waiting reports whether the quote still waits for its files. A status 1
// the microservice reports after the hand-off is its own (waiting for its
// payment, say), not the node's.
func (a *quoteActor) waiting() bool {
	return a.q.Status == sluice.StatusWaiting && !a.q.HandedOff && len(a.q.Files) == 0
}

func (a *quoteActor) expireIfDue(c actor.Context) {
	if a.waiting() && a.q.Expired(a.e.now()) {
		a.set(c, func(q *quoteState) { q.Status = sluice.StatusQuoteExpired })
	}
}

func (a *quoteActor) startUpload(c actor.Context, msg *StartUpload) error {
	a.expireIfDue(c)
	switch {
	case a.waiting():
	case a.q.Status == sluice.StatusQuoteExpired:
		return &sluice.Error{Kind: sluice.ErrExpired, Message: "Quote expired: ask for a new one."}
	default:
		return &sluice.Error{Kind: sluice.ErrConflict, Message: "Files already uploaded."}
	}
	status := sluice.StatusPaymentStart
	if a.q.Free() {
		status = sluice.StatusPaymentPulled // nothing to pay: straight to storage
	}
	var spend []sluice.Record
	if msg.spend != nil {
		spend = append(spend, *msg.spend)
	}
	if !a.set(c, func(q *quoteState) {
		q.Files, q.Nonce, q.Signature, q.Status = msg.Files, msg.Nonce, msg.Signature, status
	}, spend...) {
		return fmt.Errorf("%w: could not record the upload", sluice.ErrUnavailable)
	}
	if a.timer != nil {
		a.timer()
		a.timer = nil
	}
	c.Send(c.Self(), &quoteProgress{})
	return nil
}

// worker runs fn on its own goroutine; its result comes back as a message.
func (a *quoteActor) worker(c actor.Context, fn func(ctx context.Context) any) {
	if a.working {
		return
	}
	a.working = true
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	self, root := c.Self(), a.e.sys.Root
	go func() {
		defer cancel()
		root.Send(self, fn(ctx))
	}()
}

// progress takes the next step for the quote's status.
//
// The first step after an upload is to seal its files (hash them, give
// them their CIDs), before payment: the node takes no money for files it
// could not read back, and every later step (cutting, the microservice,
// links) needs the CIDs. A restart that finds files unsealed seals them
// again here.
//
// A proxied quote's only step is the hand-off to its microservice (the
// microservice takes its own payment); once handed off, whatever status
// the microservice reports, nothing is left for the node to do.
func (a *quoteActor) progress(c actor.Context) {
	q := a.q.Quote
	if len(q.Files) > 0 && !q.Sealed() && !sluice.QuoteFinal(q.Status) {
		a.worker(c, func(ctx context.Context) any { return a.e.seal(ctx, q) })
		return
	}
	switch {
	case q.BackendID != "":
		if !a.q.HandedOff && q.Status == sluice.StatusPaymentPulled && len(q.Files) > 0 {
			a.worker(c, func(ctx context.Context) any { return a.e.sendToBackend(ctx, q) })
		}
	case q.Status == sluice.StatusPaymentStart:
		a.worker(c, func(ctx context.Context) any { return a.e.pay(ctx, q) })
	case q.Status == sluice.StatusPaymentPulled && q.Type == a.e.cfg.Uploads.Builtin:
		if len(q.Chunks) == 0 {
			a.worker(c, func(ctx context.Context) any { return a.e.cut(ctx, q) })
			return
		}
		a.e.pool.add(q.ID, q.Chunks)
		if a.set(c, func(q *quoteState) { q.Status = sluice.StatusUploading }) {
			a.armStorageEnd(c)
		}
		c.Send(c.Self(), &chunksHeld{})
	case q.Status == sluice.StatusUploading && q.Type == a.e.cfg.Uploads.Builtin:
		a.e.pool.add(q.ID, q.Chunks) // after a restart; duplicates are ignored
		a.armStorageEnd(c)
		c.Send(c.Self(), &chunksHeld{})
	}
}

// placementEnd is when a built-in quote still being placed can no longer
// be: pieces are not handed out past the end of its storage period (cut
// gives every piece of a quote the same end), and a contract made just
// before the end has one challenge interval for its first proof. Zero:
// never.
func (a *quoteActor) placementEnd() time.Time {
	if len(a.q.Chunks) == 0 || a.q.Chunks[0].End.IsZero() {
		return time.Time{}
	}
	return a.q.Chunks[0].End.Add(a.e.cfg.Terms.Interval)
}

// armStorageEnd sets the timer of a built-in quote still being placed on
// farmers at its placementEnd: a quote not held by then never will be.
func (a *quoteActor) armStorageEnd(c actor.Context) {
	at := a.placementEnd()
	if at.IsZero() {
		return
	}
	if a.timer != nil {
		a.timer()
	}
	a.timer = a.e.sched.SendOnce(max(0, at.Sub(a.e.now())), c.Self(), &storageEnded{})
}

// doneIfHeld moves a quote being placed on farmers to done (400) once the
// pool holds all of its pieces; it reports whether the quote is held.
func (a *quoteActor) doneIfHeld(c actor.Context) bool {
	if a.q.Status != sluice.StatusUploading || !a.e.pool.held(a.q.ID) {
		return false
	}
	a.set(c, func(q *quoteState) { q.Status = sluice.StatusDone })
	return true
}

// storageEnded ends a built-in quote whose storage period ran out before
// every piece had its farmers: the upload failed (401). A quote held in
// time is done (400) and stays so.
func (a *quoteActor) storageEnded(c actor.Context) {
	a.timer = nil
	if a.q.Status != sluice.StatusUploading || a.q.Type != a.e.cfg.Uploads.Builtin {
		return
	}
	if at := a.placementEnd(); at.IsZero() {
		return
	} else if a.e.now().Before(at) {
		a.armStorageEnd(c) // early, by the node's clock
		return
	}
	if a.doneIfHeld(c) {
		return
	}
	a.e.log.Warn(eventQuoteStorage, zap.String("quote", a.q.ID),
		zap.String("reason", "storage period ended before every piece was held"))
	// Not committed: set sends quoteProgress in a second, which arms the
	// timer again, already due.
	a.set(c, func(q *quoteState) { q.Status = sluice.StatusInternalError })
}

// sealed records the CIDs the seal step found, then removes the pending
// files (only once the CIDs are committed: a crash before that seals them
// again) and goes on. A failure to seal ends the quote with 401.
func (a *quoteActor) sealed(c actor.Context, msg *filesSealed) {
	if msg.err != nil {
		if errors.Is(msg.err, context.Canceled) {
			return // the actor is stopping; a restart seals again
		}
		a.e.log.Error(eventQuoteStorage, zap.String("quote", a.q.ID), zap.Error(msg.err))
		if a.set(c, func(q *quoteState) { q.Status = sluice.StatusInternalError }) {
			a.e.discardPending(a.q.Quote)
		}
		return
	}
	if !a.set(c, func(q *quoteState) {
		q.Files = slices.Clone(q.Files) // a.q shares the array until the commit
		for i := range q.Files {
			q.Files[i].CID = msg.cids[i]
		}
	}) {
		return // set retries the step, which seals again
	}
	a.e.discardPending(a.q.Quote)
	a.progress(c)
}

// seal hashes the quote's unsealed files and makes each available under
// its CID. It reads them back from disk, one buffer at a time.
func (e *Engine) seal(ctx context.Context, q sluice.Quote) any {
	b := e.cfg.Uploads.Blobs
	if b == nil {
		return &filesSealed{err: errors.New("no temporary store")}
	}
	cids := make([]string, len(q.Files))
	for i, f := range q.Files {
		if f.Sealed() {
			cids[i] = f.CID
			continue
		}
		cid, err := e.sealFile(ctx, q.ID, f.Pending)
		if err != nil {
			return &filesSealed{err: fmt.Errorf("seal %s (%s): %w", f.Name, f.Pending, err)}
		}
		cids[i] = cid
	}
	return &filesSealed{cids: cids}
}

// sealFile seals one pending file of quote and claims its blob for the
// quote at once. The blob may have been another quote's, released: Seal
// cancels a release still pending; one that fired between Seal and the
// claim removed the blob, so then the file is sealed again, now claimed.
func (e *Engine) sealFile(ctx context.Context, quote, pending string) (string, error) {
	b := e.cfg.Uploads.Blobs
	cid, err := b.Seal(ctx, pending)
	if err != nil {
		return "", err
	}
	e.needs.need(quote, []string{cid}, time.Time{})
	if b.Has(cid) {
		return cid, nil
	}
	again, err := b.Seal(ctx, pending)
	if err == nil && !b.Has(again) {
		err = fmt.Errorf("blob %s not in the store after sealing", again)
	}
	return again, err
}

// pay pulls the quoted amount: check allowance and balance, sign the
// transferFrom and commit it before it is sent (so a restart re-sends the
// same transaction), then wait for its confirmations.
//
// It refuses a quote the node takes no payment for: a proxied quote (its
// microservice takes its own) stays as it is, a free one has nothing to
// pull.
func (e *Engine) pay(ctx context.Context, q sluice.Quote) any {
	switch {
	case q.BackendID != "":
		return &paymentResult{status: q.Status, err: fmt.Errorf("quote %s is a microservice's: the node pulls no payment for it", q.ID)}
	case q.Free():
		return &paymentResult{status: sluice.StatusPaymentPulled}
	}
	p := e.cfg.Uploads.Payments
	if p == nil {
		return &paymentResult{status: sluice.StatusInternalError, err: errors.New("no payment chain configured")}
	}
	chain, amount := q.ChainIDString(), q.AmountInt()
	if q.TxHash != "" {
		paid, err := p.Paid(ctx, chain, q.Token, q.Owner, amount, q.TxHash)
		if err == nil && !paid && len(q.RawTx) > 0 {
			err = p.Send(ctx, chain, q.RawTx) // same transaction: cannot pay twice
			if err == nil {
				err = p.Wait(ctx, chain, q.TxHash)
			}
			paid = err == nil
		}
		if paid {
			return &paymentResult{status: sluice.StatusPaymentPulled}
		}
		return &paymentResult{status: sluice.StatusPaymentFailed, err: err}
	}
	if err := p.Check(ctx, chain, q.Token, q.Owner, amount); err != nil {
		return &paymentResult{status: sluice.StatusLowAllowance, err: err}
	}
	raw, hash, err := p.Prepare(ctx, chain, q.Token, q.Owner, amount)
	if err != nil {
		return &paymentResult{status: sluice.StatusPaymentFailed, err: err}
	}
	// Commit the transaction first: the actor's paymentResult with
	// StatusPaymentStart records it, then sends it on the next step.
	return &paymentResult{status: sluice.StatusPaymentStart, rawTx: raw, txHash: hash}
}

// cut splits the quote's stored files into chunks and computes their tags.
func (e *Engine) cut(ctx context.Context, q sluice.Quote) any {
	size := e.cfg.Uploads.ChunkSize
	leaf := e.cfg.Scheme.Params().LeafSize
	end := e.now().Add(time.Duration(min(q.Duration, int64(100*365*24*3600))) * time.Second)
	var out []sluice.Chunk
	buf := make([]byte, size)
	for _, f := range q.Files {
		if f.Length == 0 {
			continue // no bytes, no chunks
		}
		blob, n, err := e.cfg.Uploads.Blobs.Open(f.CID)
		if err != nil {
			return &chunksCut{err: fmt.Errorf("open %s: %w", f.CID, err)}
		}
		for off := int64(0); off < n; off += size {
			if ctx.Err() != nil {
				blob.Close()
				return &chunksCut{err: ctx.Err()}
			}
			piece := buf[:min(size, n-off)]
			if _, err := blob.ReadAt(piece, off); err != nil && err != io.EOF {
				blob.Close()
				return &chunksCut{err: err}
			}
			tag, err := proof.Encode(bytes.NewReader(piece), int64(len(piece)), leaf)
			if err != nil {
				blob.Close()
				return &chunksCut{err: err}
			}
			out = append(out, sluice.Chunk{FileHash: sluice.HashBytes(piece), Size: int64(len(piece)), Tag: tag,
				Quote: q.ID, Source: f.CID, Offset: off, End: end})
		}
		blob.Close()
	}
	return &chunksCut{chunks: out}
}

// sendToBackend hands the stored files to the quote's microservice, as
// ipfs:// URIs it fetches from this node's private listener.
func (e *Engine) sendToBackend(ctx context.Context, q sluice.Quote) any {
	reg := e.cfg.Uploads.Registry
	if reg == nil {
		return &backendResult{err: errors.New("no storage registry")}
	}
	s, known, _ := reg.Get(q.Type)
	if !known {
		return &backendResult{err: fmt.Errorf("storage type %q is unknown", q.Type)}
	}
	refs := make([]microservice.FileRef, len(q.Files))
	for i, f := range q.Files {
		refs[i] = microservice.FileRef{IPFSURI: "ipfs://" + f.CID, ContentType: f.ContentType}
	}
	return &backendResult{err: e.cfg.Uploads.Client.Upload(ctx, s, q.BackendID, q.Nonce, q.Signature, refs)}
}
