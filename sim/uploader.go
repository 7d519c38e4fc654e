package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	randv2 "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/contracts"
	"github.com/sluicehq/sluice/farmer"
)

// ChainBackend is what paid uploads need of an Ethereum node: send the
// approve transaction and wait for its receipt. *ethclient.Client and
// go-ethereum's simulated.Client satisfy it.
type ChainBackend interface {
	contracts.Backend
	TransactionReceipt(ctx context.Context, txHash common.Hash) (*types.Receipt, error)
}

// DialChain connects to an Ethereum JSON-RPC endpoint for paid uploads.
func DialChain(ctx context.Context, rpcURL string) (ChainBackend, error) {
	c, err := ethclient.DialContext(ctx, rpcURL)
	if err != nil {
		return nil, fmt.Errorf("sim: chain %s: %w", rpcURL, err)
	}
	return c, nil
}

// LoadKeys reads private keys, one hex key per line ("0x" optional; blank
// lines and lines starting with # are skipped), for Options.PayKeys.
func LoadKeys(file string) ([]*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	var keys []*ecdsa.PrivateKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := crypto.HexToECDSA(strings.TrimPrefix(line, "0x"))
		if err != nil {
			return nil, fmt.Errorf("sim: %s line %d: not a private key", file, n)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Upload outcomes.
const (
	OutcomeDone       = "done"       // status 400 and the bytes came back
	OutcomeFailed     = "failed"     // a call failed or the status ended elsewhere
	OutcomeUnfinished = "unfinished" // the run ended first
	OutcomeSkipped    = "skipped"    // a priced quote without chain access
)

// UploadRecord is one upload as the simulator saw it: the ledger's side of
// getStatus.
type UploadRecord struct {
	QuoteID  string `json:"quote_id,omitempty"`
	Uploader int    `json:"uploader"`
	Size     int64  `json:"size"`
	Type     string `json:"type"`
	Paid     bool   `json:"paid"`
	Outcome  string `json:"outcome"`
	Status   int    `json:"status"` // the last status seen
	// Verified: the bytes came back from GET /ipfs/{cid} (the built-in
	// type "sluice" only; other types end at their link).
	Verified bool      `json:"verified"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	Done     time.Time `json:"done,omitzero"`
}

// vuploader is one virtual uploader (an Ocean uploader client).
type vuploader struct {
	r       *run
	idx     int
	g       UploaderGroup
	storage []storageType
	rng     *randv2.Rand
}

// account is a paying user's key with its nonce. Its lock serialises the
// uploads of one account: an approve replaces the allowance, so two
// uploads from one account must not overlap.
type account struct {
	mu    sync.Mutex
	key   *ecdsa.PrivateKey
	nonce int64
}

func newUploader(r *run, idx, group int, g UploaderGroup, storage []storageType) *vuploader {
	return &vuploader{r: r, idx: idx, g: g, storage: storage,
		rng: randv2.New(randv2.NewPCG(r.sc.Seed, 1<<32+uint64(idx)))}
}

func (u *vuploader) run(ctx context.Context, stop <-chan struct{}) {
	delay := u.g.Start.D()
	if delay == 0 {
		delay = max(time.Second, u.r.intervalOr(0))
	}
	if !sleepUntil(ctx, stop, time.Now().Add(delay)) {
		return
	}
	for i := 0; u.g.Uploads < 0 || i < u.g.Uploads; i++ {
		size := int64(u.g.Sizes[(u.idx+i)%len(u.g.Sizes)])
		u.one(ctx, stop, size)
		if !sleepUntil(ctx, stop, time.Now().Add(u.g.Pause.D())) {
			return
		}
	}
}

// sign signs a request about quoteID as @oceanprotocol/uploader does:
// EIP-191 over "0x" + sha256hex(quoteId + nonce), nonce in Unix seconds,
// increasing.
func (a *account) sign(quoteID string) (nonce, sig string) {
	a.nonce = max(a.nonce+1, time.Now().Unix())
	nonce = strconv.FormatInt(a.nonce, 10)
	s, err := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(quoteID, nonce))), a.key)
	if err != nil {
		panic(err) // unreachable: a valid key signs any 32-byte hash
	}
	s[64] += 27
	return nonce, "0x" + hex.EncodeToString(s)
}

// maxQuoteRetries bounds how often an uploader asks again for a quote the
// node refused with 429.
const maxQuoteRetries = 8

// limited reports whether err is the node's 429.
func limited(err error) bool {
	var e *farmer.APIError
	return errors.As(err, &e) && e.Status == http.StatusTooManyRequests
}

// one makes one upload from quote to the bytes served back.
func (u *vuploader) one(ctx context.Context, stop <-chan struct{}, size int64) {
	r := u.r
	rec := &UploadRecord{Uploader: u.idx, Size: size, Type: u.g.Type, Started: time.Now()}
	r.uploadMu.Lock()
	r.uploads = append(r.uploads, rec)
	r.uploadMu.Unlock()
	r.m.uploadsStarted.Add(1)
	fail := func(what string, err error) {
		rec.Outcome, rec.Error = OutcomeFailed, what+": "+err.Error()
	}

	// The user: a fresh key, or a funded one for a priced type.
	user := &account{}
	user.key, _ = crypto.GenerateKey()
	paying := false
	if n := len(r.opt.PayKeys); n > 0 && r.opt.Chain != nil && u.priced() {
		user, paying = r.accounts[u.idx%n], true
		user.mu.Lock()
		defer user.mu.Unlock()
	}
	chainID, token := u.payment()
	req := quoteRequest{Type: u.g.Type, Files: []quoteFile{{Length: size}},
		Duration: int64(u.g.StorageDuration.D() / time.Second), UserAddress: crypto.PubkeyToAddress(user.key.PublicKey).Hex(),
		Payment: quotePayment{ChainID: chainID, TokenAddress: token}}
	q, err := r.api.getQuote(ctx, req)
	// Over the node's --quote-rate: wait as told, as a polite client does
	// (each 429 still shows in the report's table of requests).
	for attempt := 0; limited(err) && attempt < maxQuoteRetries; attempt++ {
		r.quotesLimited.Add(1)
		if !sleepUntil(ctx, stop, time.Now().Add(farmer.RetryDelay(err, attempt, u.rng.Float64()))) {
			break
		}
		q, err = r.api.getQuote(ctx, req)
	}
	if err != nil {
		fail("getQuote", err)
		return
	}
	rec.QuoteID = q.QuoteID
	if q.TokenAmount != "" && q.TokenAmount != "0" {
		rec.Paid = true
		if !paying {
			rec.Outcome, rec.Error = OutcomeSkipped, "the quote has a price and no chain access or keys were given"
			return
		}
		if err := u.approve(ctx, user.key, q); err != nil {
			fail("approve", err)
			return
		}
	}

	data := make([]byte, size)
	fillRandom(u.rng, data)
	nonce, sig := user.sign(q.QuoteID)
	if err := r.api.upload(ctx, q.QuoteID, nonce, sig, data); err != nil {
		fail("upload", err)
		return
	}
	// Status until final. The node offers the pieces to farmers from
	// status 300 on; honest farmers then make room for them at once, so
	// the status is polled quickly until then.
	pieces := (size + int64(r.sc.UploadChunkSize) - 1) / int64(r.sc.UploadChunkSize)
	poll := min(max(r.intervalOr(time.Second)/4, 50*time.Millisecond), 500*time.Millisecond)
	offered := false
	for {
		st, err := r.api.getStatus(ctx, q.QuoteID)
		if err == nil {
			rec.Status = st
			if !offered && st >= sluice.StatusUploading {
				offered = true
				r.addDemand(pieces * int64(r.sc.UploadRedundancy))
			}
			if sluice.QuoteFinal(st) {
				break
			}
		}
		wait := poll
		if !offered {
			wait = 20 * time.Millisecond
		}
		if !sleepUntil(ctx, stop, time.Now().Add(wait)) {
			rec.Outcome = OutcomeUnfinished
			return
		}
	}
	if rec.Status != sluice.StatusDone {
		fail("status", fmt.Errorf("%d (%s)", rec.Status, sluice.QuoteStatusText[rec.Status]))
		return
	}
	rec.Done = time.Now()

	nonce, sig = user.sign(q.QuoteID)
	links, err := r.api.getLink(ctx, q.QuoteID, nonce, sig)
	if err == nil && (len(links) != 1 || links[0].CID == "") {
		err = fmt.Errorf("%w: %d links", errMalformed, len(links))
	}
	if err != nil {
		fail("getLink", err)
		return
	}
	if u.g.Type != "sluice" {
		// A microservice's link is not served by the node: done at the link.
		rec.Outcome = OutcomeDone
		r.m.uploadsDone.Add(1)
		return
	}
	back, err := r.api.fetch(ctx, links[0].CID, size+1)
	if err == nil && !bytes.Equal(back, data) {
		err = fmt.Errorf("served %d bytes that differ from the %d uploaded", len(back), len(data))
		r.m.addError("upload: bytes served back differ")
	}
	if err != nil {
		fail("GET /ipfs", err)
		return
	}
	rec.Verified = true
	rec.Outcome = OutcomeDone
	r.m.uploadsDone.Add(1)
}

// priced reports whether the node lists payment options for the type.
func (u *vuploader) priced() bool {
	for _, s := range u.storage {
		if s.Type == u.g.Type {
			return len(s.Payment) > 0
		}
	}
	return false
}

// payment picks the chain and token the quote names: the type's first
// accepted token, or, for a free type, any chain and the zero address.
func (u *vuploader) payment() (chainID, token string) {
	for _, s := range u.storage {
		if s.Type != u.g.Type {
			continue
		}
		for _, p := range s.Payment {
			if len(p.AcceptedTokens) > 0 {
				return rawString(p.ChainID), p.AcceptedTokens[0].Value
			}
		}
	}
	return "1337", "0x0000000000000000000000000000000000000000"
}

// rawString reads a JSON string or number as text.
func rawString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// approve lets the quote's payee pull the quoted amount, and waits until
// the approval is mined.
func (u *vuploader) approve(ctx context.Context, key *ecdsa.PrivateKey, q quote) error {
	chainID, ok := new(big.Int).SetString(rawString(q.ChainID), 10)
	amount, ok2 := new(big.Int).SetString(q.TokenAmount, 10)
	if !ok || !ok2 || !common.IsHexAddress(q.TokenAddress) || !common.IsHexAddress(q.ApproveAddress) {
		return fmt.Errorf("%w: quote without a usable chain, token, amount or payee", errMalformed)
	}
	start := time.Now()
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		tx, err := contracts.Approve(ctx, u.r.opt.Chain, key, chainID, common.HexToAddress(q.TokenAddress),
			common.HexToAddress(q.ApproveAddress), amount)
		if err != nil {
			return err
		}
		for {
			rc, err := u.r.opt.Chain.TransactionReceipt(ctx, tx.Hash())
			if err == nil {
				if rc.Status != types.ReceiptStatusSuccessful {
					return errors.New("approve transaction reverted")
				}
				return nil
			}
			if !sleepUntil(ctx, nil, time.Now().Add(50*time.Millisecond)) {
				return fmt.Errorf("approve not mined: %w", ctx.Err())
			}
		}
	}()
	u.r.m.observe(routeApprove, time.Since(start), err)
	return err
}
