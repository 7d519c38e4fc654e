package actors

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/chain"
	"github.com/sluicehq/sluice/microservice"
)

// Blobs is the node's temporary content-addressed store, as the upload
// engine reads it.
type Blobs interface {
	// Open returns a stored file by CID (string form) and its size.
	Open(cid string) (BlobFile, int64, error)
	// Release removes a stored file once after has passed; a later
	// Release of the same CID replaces the pending one.
	Release(cid string, after time.Duration)
	// Keep cancels a stored file's pending release.
	Keep(cid string)
	// Has reports whether the store holds the file.
	Has(cid string) bool
	// List returns the CIDs of every stored file.
	List() ([]string, error)
	// Seal hashes an acknowledged upload's pending file and makes it
	// available under its CID, which it returns. Sealing again is
	// harmless; the pending file stays until Discard.
	Seal(ctx context.Context, pending string) (cid string, err error)
	// Discard removes a pending file (once its CID is recorded).
	Discard(pending string) error
	// SweepPending removes the pending files left from before the store
	// was opened that keep does not claim, and returns how many.
	SweepPending(keep func(pending string) bool) (int, error)
}

// BlobFile is an open stored file.
type BlobFile interface {
	io.ReaderAt
	io.Closer
}

// Payments pulls ERC-20 payments on the configured chains.
type Payments interface {
	// Payee is the approveAddress on a chain, if the chain is configured.
	Payee(chainID string) (string, bool)
	// Accepts reports whether a token is accepted on a chain.
	Accepts(chainID, token string) bool
	// Check verifies the payer's allowance to the payee and balance.
	Check(ctx context.Context, chainID, token, from string, amount *big.Int) error
	// Prepare signs transferFrom(from, payee, amount) without sending it.
	Prepare(ctx context.Context, chainID, token, from string, amount *big.Int) (raw []byte, hash string, err error)
	// Send broadcasts a prepared transaction (again, if need be).
	Send(ctx context.Context, chainID string, raw []byte) error
	// Wait returns once the transaction has its confirmations, or fails.
	Wait(ctx context.Context, chainID, hash string) error
	// Paid reports whether hash is a mined, successful transfer of amount
	// from the payer to the payee.
	Paid(ctx context.Context, chainID, token, from string, amount *big.Int, hash string) (bool, error)
}

// UploadConfig configures the uploader side of the engine.
type UploadConfig struct {
	// QuoteTTL is how long an unpaid quote lasts (default 30 minutes).
	QuoteTTL time.Duration
	// Builtin names the storage type backed by the farmer network ("sluice").
	Builtin            string
	BuiltinDescription string
	// Rate is the built-in type's price per byte per second of storage, in
	// token units; nil or zero makes the type free.
	Rate *big.Rat
	// Accepted are the chains and tokens the built-in type takes (paid).
	Accepted []microservice.PaymentOption
	// Redundancy is how many farmers must hold each chunk with an accepted
	// proof before an upload is done (default 2).
	Redundancy int
	// ChunkSize is the size uploaded files are cut into (default 1 MiB).
	ChunkSize int64
	// Retention is how long an uploaded file stays in the temporary store
	// once no quote needs it (default 1 hour): a microservice has finished
	// storing it, its built-in storage period ended, or its quote failed
	// (see blobNeeds).
	Retention time.Duration
	Blobs     Blobs
	Payments  Payments
	Registry  *microservice.Registry
	Client    *microservice.Client
}

func (u *UploadConfig) defaults() {
	if u.QuoteTTL <= 0 {
		u.QuoteTTL = 30 * time.Minute
	}
	if u.Builtin == "" {
		u.Builtin = "sluice"
	}
	if u.BuiltinDescription == "" {
		u.BuiltinDescription = "File storage on the Sluice farmer network"
	}
	if u.Redundancy <= 0 {
		u.Redundancy = 2
	}
	if u.ChunkSize <= 0 {
		u.ChunkSize = 1 << 20
	}
	if u.Client == nil {
		u.Client = &microservice.Client{}
	}
	if u.Retention <= 0 {
		u.Retention = time.Hour
	}
}

func quoteIdentity(id string) Identity { return Identity{Kind: sluice.KindQuote, ID: id} }

// quoteState is what a quote actor owns: the quote, and whether its files
// were handed to its microservice (proxied types). From the hand-off on the
// microservice owns the upload: its statuses (100, 101, ... as it reports
// them through getStatus) are recorded as the quote's status, and the node
// neither pays nor uploads again for it, after a restart too.
type quoteState struct {
	sluice.Quote
	HandedOff bool
}

// quoteJSON is a quote record's state: the quote's fields and, for a
// proxied quote, handed_off. Records written before the flag existed lack
// it; decodeQuote infers it for them.
type quoteJSON struct {
	sluice.Quote
	HandedOff *bool `json:"handed_off,omitempty"`
}

func quoteRecord(q *quoteState) sluice.Record {
	st := quoteJSON{Quote: q.Quote}
	if q.BackendID != "" {
		st.HandedOff = &q.HandedOff
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(fmt.Sprintf("encode quote: %v", err))
	}
	return sluice.Record{Kind: sluice.KindQuote, ID: q.ID, Owner: strings.ToLower(q.Owner), Version: q.Version, Live: true, State: b}
}

// decodeQuote reads a quote record. A proxied quote's record from before
// handed_off was written counts as handed off once its files are all
// sealed: the node sealed them just before the hand-off, and a status
// recorded after that (100, 101, ...) came from the microservice. (A node
// stopped between the seal and the hand-off's reply was the other case; it
// cannot be told apart, and sending the upload again would fail against a
// microservice that already has it, so it is not sent again.)
func decodeQuote(r sluice.Record) (quoteState, error) {
	var st quoteJSON
	if err := json.Unmarshal(r.State, &st); err != nil {
		return quoteState{}, err
	}
	q := quoteState{Quote: st.Quote}
	switch {
	case st.HandedOff != nil:
		q.HandedOff = *st.HandedOff
	case q.BackendID != "":
		q.HandedOff = len(q.Files) > 0 && q.Sealed()
	}
	return q, nil
}

// Upload errors with the Ocean backend's messages.
var (
	ErrQuoteNotFound = &sluice.Error{Kind: sluice.ErrNotFound, Message: "Quote does not exist."}
	ErrBadInput      = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Invalid input data."}
	ErrUnknownType   = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Chosen storage type does not exist."}
	ErrSigner        = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Invalid signature: the signer does not own this quote."}
)

// StorageInfo lists the storage types on offer: the built-in one and every
// active microservice.
func (e *Engine) StorageInfo() []microservice.Storage {
	u := e.cfg.Uploads
	out := []microservice.Storage{{Type: u.Builtin, Description: u.BuiltinDescription, Payment: e.builtinPayment()}}
	if u.Registry != nil {
		out = append(out, u.Registry.Active()...)
	}
	return out
}

func (e *Engine) builtinPayment() []microservice.PaymentOption {
	if e.builtinFree() {
		return []microservice.PaymentOption{}
	}
	return e.cfg.Uploads.Accepted
}

func (e *Engine) builtinFree() bool {
	r := e.cfg.Uploads.Rate
	return r == nil || r.Sign() == 0 || e.cfg.Uploads.Payments == nil
}

// QuoteRequest is a parsed getQuote body.
type QuoteRequest struct {
	Type     string
	Lengths  []int64
	Duration int64
	// HasDuration: the body had a duration. Every type requires one, as
	// the Ocean backend's quote serializer does ({"duration": ["This
	// field is required."]}, whatever the microservice answered); the
	// built-in type also wants it positive, or the price would be zero.
	HasDuration bool
	ChainID     json.RawMessage
	Token       string
	Owner       string
	Raw         []byte // the body as sent, forwarded to microservices
}

// QuoteResult is what getQuote answers.
type QuoteResult struct {
	QuoteID        string          `json:"quoteId"`
	TokenAmount    string          `json:"tokenAmount"`
	ApproveAddress string          `json:"approveAddress"`
	ChainID        json.RawMessage `json:"chainId"`
	TokenAddress   string          `json:"tokenAddress"`
}

// NewQuote prices an upload: on the built-in type from its rate, on a
// microservice by asking it. The quote is committed and its actor started
// before the answer.
func (e *Engine) NewQuote(ctx context.Context, req QuoteRequest) (QuoteResult, error) {
	u := e.cfg.Uploads
	now := e.now()
	q := sluice.Quote{Type: req.Type, Lengths: req.Lengths, Duration: req.Duration, ChainID: req.ChainID,
		Token: req.Token, Owner: req.Owner, Created: now, Expires: now.Add(u.QuoteTTL), Status: sluice.StatusWaiting, Version: 1}
	switch {
	case req.Type == u.Builtin:
		if err := req.checkDuration(true); err != nil {
			return QuoteResult{}, err
		}
		// 128 random bits do not collide; the claim makes sure (and a
		// randomness source that repeats itself fails the quote).
		for try := 0; ; try++ {
			var id [16]byte
			if err := e.read(id[:]); err != nil {
				return QuoteResult{}, err
			}
			q.ID = hex.EncodeToString(id[:])
			free, err := e.claimQuoteID(ctx, q.ID)
			if err != nil {
				return QuoteResult{}, err
			}
			if free {
				break
			}
			if try == 2 {
				return QuoteResult{}, fmt.Errorf("%w: no free quote id after 3 random draws", sluice.ErrUnavailable)
			}
		}
		defer e.quotes.unclaim(q.ID)
		if e.builtinFree() {
			q.Amount, q.Payee = "0", common.Address{}.Hex()
			if q.Token == "" {
				q.Token = common.Address{}.Hex()
			}
			break
		}
		chainID := q.ChainIDString()
		payee, ok := u.Payments.Payee(chainID)
		if !ok || !u.Payments.Accepts(chainID, req.Token) {
			return QuoteResult{}, &sluice.Error{Kind: sluice.ErrInvalid, Message: "Payment token not accepted: unknown chain or token."}
		}
		var total int64
		for _, l := range req.Lengths {
			total += l
		}
		q.Amount, q.Payee = sluice.StoragePrice(total, req.Duration, u.Rate).String(), payee
	default:
		if u.Registry == nil {
			return QuoteResult{}, ErrUnknownType
		}
		s, _, active := u.Registry.Get(req.Type)
		if !active {
			return QuoteResult{}, ErrUnknownType
		}
		if err := req.checkDuration(false); err != nil {
			return QuoteResult{}, err
		}
		raw, err := u.Client.GetQuote(ctx, s, req.Raw)
		if err != nil {
			return QuoteResult{}, err
		}
		var mq struct {
			QuoteID        string          `json:"quoteId"`
			TokenAmount    json.RawMessage `json:"tokenAmount"`
			ApproveAddress string          `json:"approveAddress"`
			TokenAddress   string          `json:"tokenAddress"`
		}
		if json.Unmarshal(raw, &mq) != nil || !microservice.ValidKey(mq.QuoteID, microservice.MaxQuoteIDLen) {
			return QuoteResult{}, &microservice.RemoteError{Status: 502, Message: "the storage backend sent an invalid quote"}
		}
		// The microservice's id is the node's (see ErrQuoteIDInUse): the
		// client signs it, and the node forwards those signatures.
		free, err := e.claimQuoteID(ctx, mq.QuoteID)
		if err != nil {
			return QuoteResult{}, err
		}
		if !free {
			e.log.Warn(eventQuoteStorage, zap.String("type", req.Type), zap.String("quote", mq.QuoteID),
				zap.String("detail", "the storage backend returned a quote id already in use"))
			return QuoteResult{}, ErrQuoteIDInUse
		}
		defer e.quotes.unclaim(mq.QuoteID)
		q.ID, q.BackendID, q.Payee = mq.QuoteID, mq.QuoteID, mq.ApproveAddress
		q.Amount = strings.Trim(string(mq.TokenAmount), `"`)
		if mq.TokenAddress != "" {
			q.Token = mq.TokenAddress
		}
	}
	st := quoteState{Quote: q}
	if err := e.writer.Commit(ctx, quoteRecord(&st)); err != nil {
		return QuoteResult{}, unavailable(err)
	}
	if err := e.spawn(quoteIdentity(q.ID), &st); err != nil {
		return QuoteResult{}, err
	}
	e.quotes.add(q.Owner, q.ID, q.Type, q.Created)
	return resultOf(q), nil
}

// ErrQuoteIDInUse answers getQuote when a microservice returns a quote id
// the node already has (its own earlier one, another microservice's or a
// built-in quote's). A proxied quote keeps its microservice's id as the
// node's: the client signs uploads and getLink with the id it is given,
// and the node forwards those signatures, which the microservice checks
// against its own id (as in the Ocean backend, which stores the
// microservice's quoteId as is). So the id cannot be namespaced; a clash
// is the microservice's fault, and no quote is made.
var ErrQuoteIDInUse = &microservice.RemoteError{Status: http.StatusBadGateway, Message: "storage backend returned a quote id already in use"}

// claimQuoteID reserves id for a new quote: false if a quote has it or is
// being made with it. The caller unclaims it once the quote is committed
// and indexed (or was not made). A record the index does not know (one
// skipped at start-up as unreadable) counts as taken too.
func (e *Engine) claimQuoteID(ctx context.Context, id string) (bool, error) {
	if !e.quotes.claim(id) {
		return false, nil
	}
	_, err := e.store.Get(ctx, sluice.KindQuote, id)
	switch {
	case errors.Is(err, sluice.ErrNotFound):
		return true, nil
	case err == nil:
		e.quotes.unclaim(id)
		return false, nil
	}
	e.quotes.unclaim(id)
	return false, unavailable(err)
}

// checkDuration refuses a request without a duration, or (positive) with
// one of zero. It runs once the type is known to exist.
func (r QuoteRequest) checkDuration(positive bool) error {
	switch {
	case !r.HasDuration:
		return &sluice.Error{Kind: sluice.ErrInvalid, Message: "Invalid input data: duration is required."}
	case positive && r.Duration <= 0:
		return &sluice.Error{Kind: sluice.ErrInvalid, Message: "Invalid input data: duration must be at least 1 second."}
	}
	return nil
}

func resultOf(q sluice.Quote) QuoteResult {
	return QuoteResult{QuoteID: q.ID, TokenAmount: q.Amount, ApproveAddress: q.Payee, ChainID: q.ChainID, TokenAddress: q.Token}
}

// CheckSigned verifies a signed request about a quote ("" for history):
// the signature recovers to owner and the nonce passes the owner's rule,
// which is committed before this returns.
func (e *Engine) CheckSigned(ctx context.Context, owner, quoteID, nonce, signature string) error {
	if err := checkSigner(owner, quoteID, nonce, signature); err != nil {
		return err
	}
	return e.nonces.accept(ctx, e, owner, nonce, quoteID+nonce, nil)
}

// VerifySigned is CheckSigned without spending the nonce: it tells whether
// the request would be accepted now. An upload is verified before its
// body is read, and its nonce is spent only when the upload is recorded
// (StartUpload), so a refused upload can be sent again as signed.
func (e *Engine) VerifySigned(ctx context.Context, owner, quoteID, nonce, signature string) error {
	if err := checkSigner(owner, quoteID, nonce, signature); err != nil {
		return err
	}
	return e.nonces.check(ctx, e, owner, nonce, quoteID+nonce)
}

// checkSigner verifies that signature is owner's over the message of
// quoteID and nonce.
func checkSigner(owner, quoteID, nonce, signature string) error {
	msg := sluice.SignedMessage(quoteID, nonce)
	signer, err := chain.RecoverPersonal([]byte(msg), signature)
	if err != nil {
		return err
	}
	if !strings.EqualFold(signer.Hex(), owner) {
		return ErrSigner
	}
	return nil
}

// Quote returns a quote's current state.
func (e *Engine) Quote(ctx context.Context, id string) (sluice.Quote, error) {
	q, err := e.quoteState(ctx, id)
	return q.Quote, err
}

// quoteState returns a quote's current state from its actor, or from its
// record when it has none: a final quote's actor stops (stopIfFinal), and
// start-up spawns none for it. Its record is then all there is to it,
// committed before the actor took the final status.
func (e *Engine) quoteState(ctx context.Context, id string) (quoteState, error) {
	res, err := e.dir.Ask(ctx, quoteIdentity(id), &GetQuote{})
	if errors.Is(err, errNoActor) {
		return e.storedQuote(ctx, id)
	}
	if err != nil {
		return quoteState{}, err
	}
	r := res.(*QuoteReply)
	return quoteState{Quote: r.Quote, HandedOff: r.HandedOff}, nil
}

// storedQuote reads a quote's record.
func (e *Engine) storedQuote(ctx context.Context, id string) (quoteState, error) {
	rec, err := e.store.Get(ctx, sluice.KindQuote, id)
	if errors.Is(err, sluice.ErrNotFound) {
		return quoteState{}, ErrQuoteNotFound
	}
	if err != nil {
		return quoteState{}, unavailable(err)
	}
	return decodeQuote(rec)
}

// StartUpload gives a quote its stored files, sent by the signed request
// up.Nonce and up.Signature, whose nonce it spends: the quote commits the
// files and the owner's nonce record together, so an upload the quote
// refuses spends nothing, and one it takes cannot be replayed.
func (e *Engine) StartUpload(ctx context.Context, id string, up StartUpload) error {
	q, err := e.quoteState(ctx, id)
	if err != nil {
		return err
	}
	if err := checkSigner(q.Owner, id, up.Nonce, up.Signature); err != nil {
		return err
	}
	return e.nonces.accept(ctx, e, q.Owner, up.Nonce, id+up.Nonce, func(spend sluice.Record) error {
		up.spend = &spend
		res, err := e.dir.Ask(ctx, quoteIdentity(id), &up)
		if errors.Is(err, errNoActor) {
			return e.finalUploadRefused(ctx, id)
		}
		if err != nil {
			return err
		}
		return res.(*StartUploadReply).Err
	})
}

// finalUploadRefused answers an upload to a quote without an actor, which
// is final, as its actor would have (quoteActor.startUpload): expired, or
// it has had its files.
func (e *Engine) finalUploadRefused(ctx context.Context, id string) error {
	q, err := e.storedQuote(ctx, id)
	if err != nil {
		return err
	}
	if q.Status == sluice.StatusQuoteExpired {
		return &sluice.Error{Kind: sluice.ErrExpired, Message: "Quote expired: ask for a new one."}
	}
	return &sluice.Error{Kind: sluice.ErrConflict, Message: "Files already uploaded."}
}

// FailQuote ends an unfinished quote with a failure status.
func (e *Engine) FailQuote(ctx context.Context, id string, status int) error {
	_, err := e.dir.Ask(ctx, quoteIdentity(id), &FailQuote{Status: status})
	if errors.Is(err, errNoActor) {
		return nil
	}
	return err
}

// QuoteStatus returns a quote's status. Once a proxied quote's files are
// handed to its microservice, every call asks the microservice, as the
// Ocean backend does, and the quote records the answer; until then (and
// for the built-in type) the node's own status is the answer. A status the
// node counts as final (sluice.QuoteFinal) is kept and answered without
// asking again. A microservice that fails to answer is an error, relayed
// (microservice.RemoteError), never hidden behind the stored status.
func (e *Engine) QuoteStatus(ctx context.Context, id string) (int, error) {
	q, err := e.quoteState(ctx, id)
	if err != nil {
		return 0, err
	}
	if !q.HandedOff || sluice.QuoteFinal(q.Status) || e.cfg.Uploads.Registry == nil {
		return q.Status, nil
	}
	s, known, _ := e.cfg.Uploads.Registry.Get(q.Type)
	if !known {
		return 0, &microservice.RemoteError{Status: http.StatusBadGateway, Message: "The quote's storage type is not registered."}
	}
	st, err := e.cfg.Uploads.Client.GetStatus(ctx, s, q.BackendID)
	if err != nil {
		return 0, err
	}
	if st != q.Status {
		// Recorded before the answer, so the next call and a restart
		// start from it. An actor that is gone (the quote turned final
		// meanwhile) keeps its own status.
		if _, err := e.dir.Ask(ctx, quoteIdentity(id), &SetQuoteStatus{Status: st}); err != nil && !errors.Is(err, errNoActor) {
			e.log.Warn(eventQuoteStorage, zap.String("quote", id), zap.Error(err))
		}
	}
	return st, nil
}

// ErrNotCompleted answers getLink before there is a link to give (the
// Arweave microservice's text).
var ErrNotCompleted = &sluice.Error{Kind: sluice.ErrConflict, Message: "Upload not completed yet."}

// QuoteLink answers getLink for quote id, signed with nonce and signature.
// It checks the signature and the nonce rule, then that there can be a
// link, and only then spends the nonce: a call made too early spends
// nothing, and may be sent again as signed once the upload is done.
//
// A built-in quote has its links once its status is 400. A proxied quote's
// links come from its microservice, but only once its files were handed
// off: before that the microservice has nothing to link, and is not
// asked. After it, the microservice decides (it has the current status),
// asked with the request's own nonce and signature (the microservices
// want each signed request's nonce greater than the last one they saw
// from the user, so the upload's cannot be replayed).
func (e *Engine) QuoteLink(ctx context.Context, id, nonce, signature string) (json.RawMessage, error) {
	q, err := e.quoteState(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := e.VerifySigned(ctx, q.Owner, id, nonce, signature); err != nil {
		return nil, err
	}
	builtin := q.Type == e.cfg.Uploads.Builtin
	if (builtin && q.Status != sluice.StatusDone) || (!builtin && !q.HandedOff) {
		return nil, ErrNotCompleted
	}
	if err := e.nonces.accept(ctx, e, q.Owner, nonce, id+nonce, nil); err != nil {
		return nil, err
	}
	if builtin {
		links := make([]map[string]string, len(q.Files))
		for i, f := range q.Files {
			links[i] = map[string]string{"type": q.Type, "cid": f.CID}
		}
		return json.Marshal(links)
	}
	if e.cfg.Uploads.Registry == nil {
		return nil, ErrUnknownType
	}
	s, known, _ := e.cfg.Uploads.Registry.Get(q.Type)
	if !known {
		return nil, ErrUnknownType
	}
	return e.cfg.Uploads.Client.GetLink(ctx, s, q.BackendID, nonce, signature)
}

// ErrNoHistoryType answers getHistory for a storage type that is neither
// the built-in one nor a registered microservice (the Ocean backend's 404).
var ErrNoHistoryType = &sluice.Error{Kind: sluice.ErrNotFound, Message: "No matching storage type found"}

// ProxiedHistory answers getHistory for one microservice's type as the
// Ocean backend does: it forwards params (userAddress, nonce, signature,
// page, pageSize) to the microservice's getHistory and returns its reply
// as is. forwarded is false when the node answers from its own records
// instead: for the built-in type, for all types (typ ""), and for a type
// whose registration lapsed (its quotes keep working; its microservice may
// be gone).
func (e *Engine) ProxiedHistory(ctx context.Context, typ string, params url.Values) (reply json.RawMessage, forwarded bool, err error) {
	u := e.cfg.Uploads
	if typ == "" || typ == u.Builtin {
		return nil, false, nil
	}
	if u.Registry == nil {
		return nil, false, ErrNoHistoryType
	}
	s, known, active := u.Registry.Get(typ)
	switch {
	case !known:
		return nil, false, ErrNoHistoryType
	case !active:
		return nil, false, nil
	}
	reply, err = u.Client.GetHistory(ctx, s, params)
	return reply, true, err
}

// HistoryPage is one page of a user's quotes, newest first.
type HistoryPage struct {
	MaxPages int
	Quotes   []sluice.Quote
}

// History lists a user's quotes across types (or of one type), newest
// first; page is 1-based.
func (e *Engine) History(ctx context.Context, owner, typ string, page, size int) (HistoryPage, error) {
	// The index knows each quote's type: only the page's quotes are read
	// (getQuote needs no signature, so a user may have been given very
	// many).
	ids := e.quotes.of(owner, typ)
	out := HistoryPage{MaxPages: (len(ids) + size - 1) / size, Quotes: []sluice.Quote{}}
	from := min(len(ids), (page-1)*size)
	for _, id := range ids[from:min(len(ids), from+size)] {
		q, err := e.Quote(ctx, id)
		if err != nil {
			return HistoryPage{}, err
		}
		out.Quotes = append(out.Quotes, q)
	}
	return out, nil
}

// quoteIndex lists each user's quotes, newest first, for history, and
// knows every quote id, so that no two quotes get the same one.
//
// A user's quotes are kept oldest first, in the order they were added:
// a new quote is the newest, so adding it is an append. One added out of
// order (start-up loads quotes in the store's order) marks the list
// unsorted, and the next read sorts it once. Adding stays constant-time
// however many quotes a user has (getQuote needs no signature, so anyone
// can make many for any address).
type quoteIndex struct {
	mu      sync.Mutex
	by      map[string]*ownerQuotes
	ids     map[string]bool // every quote indexed
	claimed map[string]bool // ids of quotes being made
}

// ownerQuotes is one user's quotes, by creation time then by the order
// they were added once sorted is true.
type ownerQuotes struct {
	refs   []quoteRef
	sorted bool
}

type quoteRef struct {
	id      string
	typ     string // the quote's storage type, which never changes
	created time.Time
}

func newQuoteIndex() *quoteIndex {
	return &quoteIndex{by: map[string]*ownerQuotes{}, ids: map[string]bool{}, claimed: map[string]bool{}}
}

func (x *quoteIndex) add(owner, id, typ string, created time.Time) {
	owner = strings.ToLower(owner)
	// By the wall clock alone, as the quote's record has it: the order is
	// the same before and after a restart.
	created = created.Round(0)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ids[id] = true
	o := x.by[owner]
	if o == nil {
		o = &ownerQuotes{sorted: true}
		x.by[owner] = o
	}
	if n := len(o.refs); n > 0 && created.Before(o.refs[n-1].created) {
		o.sorted = false
	}
	o.refs = append(o.refs, quoteRef{id, typ, created})
}

// claim reserves id for a quote being made: false if a quote has it or
// another is being made with it.
func (x *quoteIndex) claim(id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ids[id] || x.claimed[id] {
		return false
	}
	x.claimed[id] = true
	return true
}

// unclaim ends a claim; an indexed quote keeps its id.
func (x *quoteIndex) unclaim(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.claimed, id)
}

// of lists a user's quote ids of storage type typ ("": of every type),
// newest first; quotes created at the same instant come in the order they
// were added.
func (x *quoteIndex) of(owner, typ string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.by[strings.ToLower(owner)]
	if o == nil {
		return []string{}
	}
	if !o.sorted {
		// Stable: quotes of one instant keep the order they were added.
		slices.SortStableFunc(o.refs, func(a, b quoteRef) int { return a.created.Compare(b.created) })
		o.sorted = true
	}
	out := make([]string, 0, len(o.refs))
	// Newest first: the runs of one instant from the last, each run in
	// its own (added) order.
	for end := len(o.refs); end > 0; {
		start := end - 1
		for start > 0 && o.refs[start-1].created.Equal(o.refs[end-1].created) {
			start--
		}
		for _, r := range o.refs[start:end] {
			if typ == "" || r.typ == typ {
				out = append(out, r.id)
			}
		}
		end = start
	}
	return out
}

// nonceBook applies the nonce rule per user, committing before it answers;
// a lock per user serialises one user's signed requests.
type nonceBook struct {
	mu    sync.Mutex
	users map[string]*nonceUser
}

// nonceUser is one user's lock, and the highest version of the user's
// nonce record handed to a commit. A commit given up on (its caller's
// deadline passed) may still land after the lock is released; the next
// record is numbered past it, so that a late write can never make the
// store ignore an acknowledged one of the same version (the store keeps
// the highest version, and ignores a version it already holds).
type nonceUser struct {
	sync.Mutex
	handed uint64
}

func newNonceBook() *nonceBook { return &nonceBook{users: map[string]*nonceUser{}} }

func (b *nonceBook) lock(user string) *nonceUser {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.users[user]
	if !ok {
		u = &nonceUser{}
		b.users[user] = u
	}
	return u
}

// accept applies the rule to owner's nonce and the signed message and
// records it. With commit nil it commits the nonce record itself; else
// commit must commit the record it is given (with whatever goes with it)
// and report whether it did: nothing is spent when it fails. The owner's
// lock is held throughout, so no other signed request of the owner's is
// checked against a record about to change.
func (b *nonceBook) accept(ctx context.Context, e *Engine, owner, nonce, message string, commit func(sluice.Record) error) error {
	user := strings.ToLower(owner)
	u := b.lock(user)
	u.Lock()
	defer u.Unlock()
	n, version, err := b.load(ctx, e, user)
	if err != nil {
		return err
	}
	if err := n.Accept(nonce, message, e.now()); err != nil {
		return err
	}
	state, _ := json.Marshal(n)
	u.handed = max(u.handed, version) + 1
	rec := sluice.Record{Kind: sluice.KindNonce, ID: user, Version: u.handed, Live: true, State: state}
	if commit != nil {
		return commit(rec)
	}
	if err := e.writer.Commit(ctx, rec); err != nil {
		return unavailable(err)
	}
	return nil
}

// check tells whether accept would take the nonce now, recording nothing.
func (b *nonceBook) check(ctx context.Context, e *Engine, owner, nonce, message string) error {
	user := strings.ToLower(owner)
	u := b.lock(user)
	u.Lock()
	defer u.Unlock()
	n, _, err := b.load(ctx, e, user)
	if err != nil {
		return err
	}
	return n.Accept(nonce, message, e.now())
}

// load reads a user's nonce record (version 0 when there is none).
func (b *nonceBook) load(ctx context.Context, e *Engine, user string) (sluice.Nonces, uint64, error) {
	var n sluice.Nonces
	rec, err := e.store.Get(ctx, sluice.KindNonce, user)
	switch {
	case errors.Is(err, sluice.ErrNotFound):
		return n, 0, nil
	case err != nil:
		return n, 0, unavailable(err)
	}
	if err := json.Unmarshal(rec.State, &n); err != nil {
		return n, 0, fmt.Errorf("decode nonces: %w", err)
	}
	return n, rec.Version, nil
}

// recoverQuotes loads every quote: all into the history index, unfinished
// ones into actors that resume where they stood (sealing first the files
// they have not sealed yet). The pending files no unfinished quote needs
// are then removed: uploads refused, or cut short by a crash, before they
// were acknowledged.
func (e *Engine) recoverQuotes(ctx context.Context) error {
	n, skipped := 0, 0
	keep := map[string]bool{}
	err := e.store.Live(ctx, sluice.KindQuote, func(r sluice.Record) error {
		q, err := decodeQuote(r)
		if err != nil {
			e.log.Error(eventRecordSkipped, zap.String("kind", "quote"), zap.String("id", r.ID), zap.Error(err))
			skipped++
			return nil
		}
		e.quotes.add(q.Owner, q.ID, q.Type, q.Created)
		e.needFiles(&q.Quote) // the blob store keeps no schedule: declare it again
		if !sluice.QuoteFinal(q.Status) || (q.Type == e.cfg.Uploads.Builtin && q.Status == sluice.StatusDone) {
			if q.Type == e.cfg.Uploads.Builtin && len(q.Chunks) > 0 {
				e.pool.add(q.ID, q.Chunks)
			}
			if !sluice.QuoteFinal(q.Status) {
				for _, f := range q.Files {
					if !f.Sealed() {
						keep[f.Pending] = true
					}
				}
				e.spawnAsync(quoteIdentity(q.ID), &q, nil)
				n++
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load quotes: %w", err)
	}
	if b := e.cfg.Uploads.Blobs; b != nil {
		removed, err := b.SweepPending(func(id string) bool { return keep[id] })
		if err != nil {
			e.log.Warn(eventQuoteStorage, zap.Error(err))
		} else if removed > 0 {
			e.log.Info(eventQuoteStorage, zap.String("detail", "removed pending files of unacknowledged uploads"), zap.Int("files", removed))
		}
		// A quote record that could not be read may name files: release
		// none rather than lose them.
		released, err := 0, error(nil)
		if skipped == 0 {
			released, err = e.needs.releaseUnclaimed()
		}
		if err != nil {
			e.log.Warn(eventQuoteStorage, zap.Error(err))
		} else if skipped > 0 {
			e.log.Warn(eventQuoteStorage, zap.String("detail", "stored files no quote names are kept: some quote records could not be read"),
				zap.Int("unreadable", skipped))
		} else if released > 0 {
			e.log.Info(eventQuoteStorage, zap.String("detail", "stored files no quote needs, removed after the retention period"),
				zap.Int("files", released), zap.Duration("retention", e.cfg.Uploads.Retention))
		}
	}
	return e.syncManagers(sluice.KindQuote)
}

// discardPending removes the pending files of a quote's sealed files, and
// of all its files once it is final: nothing will seal them any more.
func (e *Engine) discardPending(q sluice.Quote) {
	b := e.cfg.Uploads.Blobs
	if b == nil {
		return
	}
	for _, f := range q.Files {
		if f.Pending == "" || (!f.Sealed() && !sluice.QuoteFinal(q.Status)) {
			continue
		}
		if err := b.Discard(f.Pending); err != nil {
			// Left for the start-up sweep, which keeps only unsealed files
			// of unfinished quotes.
			e.log.Warn(eventQuoteStorage, zap.String("quote", q.ID), zap.Error(err))
		}
	}
}
