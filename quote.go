package sluice

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"time"
)

// Quote statuses: the bands of the Ocean uploader. 1xx payment, 2xx payment
// failures, 3xx storing, 4xx done or storage failures.
const (
	StatusNone          = 0   // no such quote
	StatusWaiting       = 1   // waiting for files
	StatusPaymentStart  = 100 // files received, payment started
	StatusPaymentPulled = 101 // transferFrom confirmed
	StatusLowAllowance  = 200 // allowance or balance too low
	StatusPaymentFailed = 201 // the payment transaction failed
	StatusQuoteExpired  = 203 // the quote expired before payment
	StatusUploading     = 300 // storing on the backend
	StatusDone          = 400 // stored; getLink answers
	StatusInternalError = 401 // the node failed
	StatusTooLarge      = 402 // uploaded bytes exceed the quoted lengths
	StatusBackendFailed = 404 // the storage backend failed
)

// QuoteStatusText names each status, for docs and logs.
var QuoteStatusText = map[int]string{
	StatusNone: "no such quote", StatusWaiting: "waiting for files", StatusPaymentStart: "payment started",
	StatusPaymentPulled: "payment pulled", StatusLowAllowance: "allowance or balance too low",
	StatusPaymentFailed: "payment transaction failed", StatusQuoteExpired: "quote expired before payment",
	StatusUploading: "uploading to storage", StatusDone: "done", StatusInternalError: "internal storage error",
	StatusTooLarge: "uploaded bytes exceed the quoted lengths", StatusBackendFailed: "storage backend failed",
}

// QuoteFinal reports whether a status never changes again.
func QuoteFinal(status int) bool {
	switch status {
	case StatusLowAllowance, StatusPaymentFailed, StatusQuoteExpired, StatusDone,
		StatusInternalError, StatusTooLarge, StatusBackendFailed:
		return true
	}
	return false
}

// StoredFile is one uploaded file of a quote, held in the node's temporary
// content-addressed store until the backend has it.
//
// An upload is acknowledged once its files are on disk, before they are
// hashed (decision 0005): Pending names the file in the store's pending
// area and CID is empty until the quote has sealed the file. Records from
// before that change have a CID and no Pending.
type StoredFile struct {
	Name        string  `json:"name"`
	CID         string  `json:"cid"`
	Pending     string  `json:"pending,omitempty"`
	Length      int64   `json:"length"`
	ContentType *string `json:"content_type"`
}

// Sealed reports whether the file's CID is known.
func (f StoredFile) Sealed() bool { return f.CID != "" }

// Quote is a price for storing some files on one storage type, and then
// that upload's progress.
type Quote struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Lengths  []int64         `json:"lengths"`
	Duration int64           `json:"duration"`
	ChainID  json.RawMessage `json:"chain_id"` // as the request sent it (string or number)
	Token    string          `json:"token"`    // ERC-20 address, "" for free types
	Amount   string          `json:"amount"`   // decimal token units
	Payee    string          `json:"payee"`    // approveAddress
	Owner    string          `json:"owner"`    // userAddress as sent
	Created  time.Time       `json:"created"`
	Expires  time.Time       `json:"expires"`
	Status   int             `json:"status"`
	TxHash   string          `json:"tx_hash,omitempty"`
	Files    []StoredFile    `json:"files,omitempty"`
	// BackendID is the microservice's own quote id (proxied types).
	BackendID string `json:"backend_id,omitempty"`
	// Upload holds the signed request that started the upload, replayed
	// to the microservice (proxied types).
	Nonce     string `json:"nonce,omitempty"`
	Signature string `json:"signature,omitempty"`
	// RawTx is the signed payment transaction, committed before it is
	// sent, so a restart re-sends the same transaction instead of paying
	// twice.
	RawTx []byte `json:"raw_tx,omitempty"`
	// Chunks are the pieces of the files offered to farmers (built-in type).
	Chunks  []Chunk `json:"chunks,omitempty"`
	Version uint64  `json:"version"`
}

// ChainIDString is the chain id as text, whatever JSON type it came as.
func (q *Quote) ChainIDString() string {
	var s string
	if json.Unmarshal(q.ChainID, &s) == nil {
		return s
	}
	return string(q.ChainID)
}

// Sealed reports whether every uploaded file has its CID (true before any
// file is uploaded).
func (q *Quote) Sealed() bool {
	for _, f := range q.Files {
		if !f.Sealed() {
			return false
		}
	}
	return true
}

// Total is the quoted number of bytes.
func (q *Quote) Total() int64 {
	var n int64
	for _, l := range q.Lengths {
		n += l
	}
	return n
}

// AmountInt is the amount as a number.
func (q *Quote) AmountInt() *big.Int {
	n, ok := new(big.Int).SetString(q.Amount, 10)
	if !ok {
		return new(big.Int)
	}
	return n
}

// Free reports whether the node pulls no payment for the quote: it costs
// nothing, or it is a microservice's quote (the microservice collects its
// own payment, as the Ocean backends do).
func (q *Quote) Free() bool { return q.BackendID != "" || q.AmountInt().Sign() == 0 }

// Expired reports whether an unpaid quote can no longer be used at now.
func (q *Quote) Expired(now time.Time) bool {
	return q.Status == StatusWaiting && !now.Before(q.Expires)
}

// SignedMessage is the text an Ocean uploader client signs for a request
// about quoteID with nonce (quoteID is "" for history): "0x" and the
// lowercase hex SHA-256 of quoteID + nonce, nonce exactly as sent.
func SignedMessage(quoteID, nonce string) string {
	sum := sha256.Sum256([]byte(quoteID + nonce))
	return "0x" + hex.EncodeToString(sum[:])
}

// StoragePrice is the built-in type's price: bytes × duration (seconds) ×
// rate per byte-second, rounded up to a whole token unit; rate is a
// decimal fraction of a token unit.
func StoragePrice(bytes int64, duration int64, rate *big.Rat) *big.Int {
	p := new(big.Rat).SetInt64(bytes)
	p.Mul(p, new(big.Rat).SetInt64(duration))
	p.Mul(p, rate)
	n := new(big.Int).Quo(p.Num(), p.Denom())
	if new(big.Int).Mul(n, p.Denom()).Cmp(p.Num()) != 0 {
		n.Add(n, big.NewInt(1))
	}
	return n
}
