package sluice

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"time"
)

// RawToken is a farmer's bearer secret: 16 random bytes, 32 hex characters
// on the wire.
type RawToken [16]byte

// String is the wire form of the token.
func (r RawToken) String() string { return hex.EncodeToString(r[:]) }

// FarmerID is the public name of the farmer holding the token: the first 20
// hex characters of SHA-256 of the raw 16 bytes (not of the hex text).
func (r RawToken) FarmerID() string {
	sum := sha256.Sum256(r[:])
	return hex.EncodeToString(sum[:])[:20]
}

// ParseToken parses the wire form of a token. Anything but 32 hex
// characters is an unknown token: the API does not tell a malformed token
// from a missing one.
func ParseToken(s string) (RawToken, error) {
	var r RawToken
	if len(s) != 32 {
		return r, ErrUnknownToken
	}
	if _, err := hex.Decode(r[:], []byte(s)); err != nil {
		return r, ErrUnknownToken
	}
	return r, nil
}

// Token is a farmer's identity on this node. The node keeps a hash of the
// secret, never the secret itself.
type Token struct {
	Farmer   string    `json:"farmer"`
	Secret   [32]byte  `json:"secret"` // SHA-256 of the raw token bytes
	Address  string    `json:"address"`
	IP       string    `json:"ip"`
	Location *Location `json:"location,omitempty"`
	Created  time.Time `json:"created"`
	// Uptime is kept current as contracts go live and close.
	Uptime  Uptime `json:"uptime"`
	Deleted bool   `json:"deleted,omitempty"`
	// ClosedProofs counts the valid proofs of contracts that are no longer
	// live; the live contracts carry their own count. Together they are the
	// farmer's heartbeats, and each is committed with the answer it counts.
	ClosedProofs int64 `json:"closed_proofs"`
	// LastDue is the latest due time of the token's contracts when the
	// record was committed. Every contract's closing commits the token, so
	// it holds the due times of all closed contracts; a live contract's
	// later due times (each new challenge) are not written here but come
	// back at start-up from the live contract itself. Absent (zero) in
	// records written before it existed.
	LastDue time.Time `json:"last_due,omitzero"`
	Version uint64    `json:"version"`
}

// NewToken makes the token record for a fresh secret.
func NewToken(raw RawToken, address, ip string, now time.Time) Token {
	return Token{
		Farmer:  raw.FarmerID(),
		Secret:  sha256.Sum256(raw[:]),
		Address: address,
		IP:      ip,
		Created: now,
	}
}

// Matches reports, in constant time, whether raw is this token's secret.
func (t *Token) Matches(raw RawToken) bool {
	sum := sha256.Sum256(raw[:])
	return subtle.ConstantTimeCompare(sum[:], t.Secret[:]) == 1
}
