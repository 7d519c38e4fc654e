package sluice

import (
	"strconv"
	"time"
)

// Nonces are the signed-request counters of one user: integer Unix
// seconds, strictly increasing, except that a nonce equal to the last one
// is accepted once per distinct signed message (the Ocean client makes two
// signed calls within one second).
type Nonces struct {
	Last int64 `json:"last"`
	// Used lists the messages already accepted with nonce Last.
	Used []string `json:"used,omitempty"`
}

// MaxNonceSkew is how far in the future a nonce may be.
const MaxNonceSkew = 5 * time.Minute

// Nonce errors, with the messages the API sends.
var (
	ErrNonceFormat = &Error{Kind: ErrInvalid, Message: "Nonce value invalid: want integer Unix seconds."}
	ErrNonceOld    = &Error{Kind: ErrInvalid, Message: "Nonce value invalid: it must be greater than the last one used."}
	ErrNonceFuture = &Error{Kind: ErrInvalid, Message: "Nonce value invalid: it is more than 5 minutes in the future."}
	ErrNonceReused = &Error{Kind: ErrConflict, Message: "Nonce value invalid: this signed request was already used."}
)

// Accept applies the rule to a nonce as sent and the signed message
// (quoteId + nonce) at now, updating n when accepted.
func (n *Nonces) Accept(nonce, message string, now time.Time) error {
	v, err := strconv.ParseInt(nonce, 10, 64)
	if err != nil || v < 0 || strconv.FormatInt(v, 10) != nonce {
		return ErrNonceFormat
	}
	if v > now.Add(MaxNonceSkew).Unix() {
		return ErrNonceFuture
	}
	switch {
	case v > n.Last:
		n.Last, n.Used = v, []string{message}
	case v == n.Last:
		for _, m := range n.Used {
			if m == message {
				return ErrNonceReused
			}
		}
		n.Used = append(n.Used, message)
	default:
		return ErrNonceOld
	}
	return nil
}
