package sluice

import (
	"errors"
	"fmt"
)

// The error kinds. Every error that reaches an API is one of these, wrapped
// with a public message by Errorf; the HTTP layer maps kinds to status codes
// in one table.
var (
	// ErrInvalid: the request is malformed or not allowed.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: the named thing does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request clashes with the current state (a repeat).
	ErrConflict = errors.New("conflict")
	// ErrExpired: the thing existed but its time is over.
	ErrExpired = errors.New("expired")
	// ErrUnavailable: the node cannot serve the request right now (its
	// store is failing or it is shutting down). Retrying later may work.
	ErrUnavailable = errors.New("unavailable")
)

// Error is a domain error: a kind for the code, and a message meant for the
// client. Message strings are part of the API (farmers match on them).
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap lets errors.Is find the kind.
func (e *Error) Unwrap() error { return e.Kind }

// Errorf builds a domain error of the given kind.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Message returns the public message of err: the domain error's message if
// err wraps one, otherwise a generic text that leaks no internals.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	var l *LimitedError
	if errors.As(err, &l) {
		return l.Error()
	}
	if errors.Is(err, ErrUnavailable) {
		return "Service unavailable, try again later."
	}
	return "Internal Server Error"
}

// Kind returns which of the error kinds err belongs to, or nil for an
// unclassified (internal) error.
func Kind(err error) error {
	for _, k := range []error{ErrInvalid, ErrNotFound, ErrConflict, ErrExpired, ErrUnavailable, ErrLimited} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// The public messages of the farmer API. Farmers compare these strings.
const (
	MsgContractExpired   = "contract expired"
	MsgProofInvalid      = "proof invalid"
	MsgProofCorrupted    = "proof corrupted"
	MsgContractNotFound  = "contract not found"
	MsgAlreadyAnswered   = "challenge already answered"
	MsgNoMoreChallenges  = "no more challenges"
	MsgNonexistentToken  = "Nonexistent token."
	MsgInvalidSort       = "Invalid sort."
	MsgNonexistentFarmer = "Nonexistent farmer id."
)

// Shared domain errors with their API messages.
var (
	ErrContractExpired  = &Error{Kind: ErrExpired, Message: MsgContractExpired}
	ErrProofInvalid     = &Error{Kind: ErrInvalid, Message: MsgProofInvalid}
	ErrProofCorrupted   = &Error{Kind: ErrInvalid, Message: MsgProofCorrupted}
	ErrContractNotFound = &Error{Kind: ErrNotFound, Message: MsgContractNotFound}
	ErrAlreadyAnswered  = &Error{Kind: ErrConflict, Message: MsgAlreadyAnswered}
	ErrNoMoreChallenges = &Error{Kind: ErrExpired, Message: MsgNoMoreChallenges}
	ErrUnknownToken     = &Error{Kind: ErrInvalid, Message: MsgNonexistentToken}
)
