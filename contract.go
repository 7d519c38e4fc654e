package sluice

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice/proof"
)

// ContractState is where a contract is in its life.
type ContractState uint8

const (
	// ContractLive: the farmer holds the chunk and answers challenges.
	ContractLive ContractState = iota
	// ContractExpired: a challenge was not answered by its due time. Final.
	ContractExpired
	// ContractEnded: the contract ran its full life (its challenge limit or
	// storage period). Final.
	ContractEnded
	// ContractCancelled: the farmer gave up its token. Final.
	ContractCancelled
)

func (s ContractState) String() string {
	switch s {
	case ContractLive:
		return "live"
	case ContractExpired:
		return "expired"
	case ContractEnded:
		return "ended"
	case ContractCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Terms are the node-wide settings a new contract is made with.
type Terms struct {
	// Interval between challenges: challenge k is due at Start+(k+1)·Interval.
	Interval time.Duration
	// Challenges a prototype contract lives for (0: no limit).
	Challenges int
}

// FileHash is the SHA-256 of a chunk's bytes; it names the chunk on the wire
// as 64 lowercase hex characters.
type FileHash [32]byte

// String is the wire form.
func (h FileHash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as hex.
func (h FileHash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex characters.
func (h *FileHash) UnmarshalText(b []byte) error {
	v, err := ParseFileHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseFileHash parses the wire form of a file hash.
func ParseFileHash(s string) (FileHash, error) {
	var h FileHash
	if len(s) != 64 {
		return h, Errorf(ErrInvalid, "Invalid file hash: want 64 hex characters.")
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, Errorf(ErrInvalid, "Invalid file hash: want 64 hex characters.")
	}
	return h, nil
}

// HashBytes returns the file hash of b.
func HashBytes(b []byte) FileHash { return sha256.Sum256(b) }

// ContractID names a contract in the stores and the actor registry: the
// owning farmer and the chunk. One farmer holds a chunk at most once.
func ContractID(farmer string, h FileHash) string {
	// One allocation (the string) instead of three: it is made for every
	// answer.
	var buf [128]byte
	b := buf[:0]
	if n := len(farmer) + 1 + hex.EncodedLen(len(h)); n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = append(b, farmer...)
	b = append(b, '/')
	return string(hex.AppendEncode(b, h[:]))
}

// Contract is one chunk held by one farmer, and the challenge it must answer
// next. Its methods are the timing rules of farmers.md: a fixed grid of due
// times, an answer strictly before the due time, the next challenge issued at
// the due time, and expiry for good when a due time passes unanswered.
type Contract struct {
	Farmer   string        `json:"farmer"`
	FileHash FileHash      `json:"file_hash"`
	Size     int64         `json:"size"`
	Seed     string        `json:"seed,omitempty"` // prototype chunk: bytes regenerate from the seed
	URL      string        `json:"url,omitempty"`  // uploaded chunk: bytes download from here
	Tag      proof.Tag     `json:"tag"`
	Start    time.Time     `json:"start"`
	Interval time.Duration `json:"interval"`
	// Limit is the number of challenges in the contract's life; 0 means the
	// contract lasts until End.
	Limit int `json:"limit,omitempty"`
	// End is when the storage period ends (uploaded data); zero means none.
	End time.Time `json:"end,omitzero"`
	// Uploaded data: the quote, the stored file (CID) and the offset of
	// the chunk in it.
	Quote  string `json:"quote,omitempty"`
	Source string `json:"source,omitempty"`
	Offset int64  `json:"offset,omitempty"`

	Index     int             `json:"index"` // the current challenge's number k
	Challenge proof.Challenge `json:"challenge"`
	Due       time.Time       `json:"due"`
	Answered  bool            `json:"answered"`
	Proofs    int64           `json:"proofs"` // valid proofs accepted over the contract's life
	State     ContractState   `json:"state"`
	// Closed is when the contract stopped being live (zero while live).
	Closed  time.Time `json:"closed,omitzero"`
	Version uint64    `json:"version"`
}

// Chunk is what a contract is made of: the bytes' identity and where they
// come from.
type Chunk struct {
	FileHash FileHash
	Size     int64
	Seed     string // prototype chunk
	URL      string // uploaded chunk: where farmers download it
	Tag      proof.Tag
	// Uploaded chunks: the quote they belong to, the stored file (its CID)
	// and the chunk's offset in it, and when their storage period ends.
	Quote  string    `json:",omitempty"`
	Source string    `json:",omitempty"`
	Offset int64     `json:",omitempty"`
	End    time.Time `json:",omitzero"`
}

// NewContract starts a contract on a chunk at now with its first challenge,
// due one interval later. seed is the first challenge's randomness.
func NewContract(farmer string, ch Chunk, scheme proof.Scheme, terms Terms, now time.Time, seed [32]byte) Contract {
	return Contract{
		Farmer:    farmer,
		FileHash:  ch.FileHash,
		Size:      ch.Size,
		Seed:      ch.Seed,
		URL:       ch.URL,
		Tag:       ch.Tag,
		Quote:     ch.Quote,
		Source:    ch.Source,
		Offset:    ch.Offset,
		End:       ch.End,
		Start:     now,
		Interval:  terms.Interval,
		Limit:     limitFor(ch, terms),
		Due:       now.Add(terms.Interval),
		Challenge: scheme.NewChallenge(seed, ch.Tag),
	}
}

// ID is the contract's store and actor name.
func (c *Contract) ID() string { return ContractID(c.Farmer, c.FileHash) }

// Live reports whether the contract is still held and audited.
func (c *Contract) Live() bool { return c.State == ContractLive }

// Advance applies every grid step whose due time is at or before now: an
// answered challenge is followed by the next one (due one interval after the
// previous due time, not after the answer), an unanswered one expires the
// contract. It reports whether anything changed. rng supplies the seeds of
// new challenges and is read only when one is issued.
func (c *Contract) Advance(now time.Time, scheme proof.Scheme, rng io.Reader) (bool, error) {
	changed := false
	for c.State == ContractLive && !now.Before(c.Due) {
		changed = true
		if !c.Answered {
			c.close(ContractExpired, c.Due)
			break
		}
		if c.lastChallenge() {
			c.close(ContractEnded, c.Due)
			break
		}
		if err := c.next(c.Due.Add(c.Interval), scheme, rng); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// EndEarly makes the current challenge the contract's last: answered by its
// due time, the contract then ends as if it had run its life. The node ends
// prototype contracts this way to make room for uploaded data.
func (c *Contract) EndEarly() {
	if c.State == ContractLive {
		c.Limit = c.Index + 1
	}
}

// lastChallenge reports whether the current challenge is the contract's
// last one.
func (c *Contract) lastChallenge() bool {
	if c.Limit > 0 && c.Index+1 >= c.Limit {
		return true
	}
	return !c.End.IsZero() && !c.Due.Before(c.End)
}

func (c *Contract) next(due time.Time, scheme proof.Scheme, rng io.Reader) error {
	var seed [32]byte
	if _, err := io.ReadFull(rng, seed[:]); err != nil {
		return fmt.Errorf("challenge seed: %w", err)
	}
	c.Index++
	c.Challenge = scheme.NewChallenge(seed, c.Tag)
	c.Due = due
	c.Answered = false
	return nil
}

func (c *Contract) close(s ContractState, at time.Time) {
	c.State = s
	c.Closed = at
}

// Err is the error a closed contract answers with, nil while it is live.
func (c *Contract) Err() error {
	switch c.State {
	case ContractLive:
		return nil
	case ContractEnded:
		return ErrNoMoreChallenges
	case ContractCancelled:
		return ErrContractNotFound
	}
	return ErrContractExpired
}

// Answer checks a proof for the current challenge at now. A valid proof
// before the due time marks the challenge answered; an invalid one changes
// nothing (the farmer may try again before the due time).
func (c *Contract) Answer(raw []byte, now time.Time, scheme proof.Scheme, rng io.Reader) error {
	if _, err := c.Advance(now, scheme, rng); err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		return err
	}
	if c.Answered {
		return ErrAlreadyAnswered
	}
	if err := scheme.Verify(c.Tag, c.Challenge, raw); err != nil {
		if errors.Is(err, proof.ErrCorrupted) {
			return ErrProofCorrupted
		}
		return ErrProofInvalid
	}
	c.Answered = true
	c.Proofs++
	return nil
}

// Cancel ends the contract because its token was given up.
func (c *Contract) Cancel(now time.Time) {
	if c.State == ContractLive {
		c.close(ContractCancelled, now)
	}
}

// Recover moves a due time that passed while the node was down to start-up
// time plus one interval: the node's downtime is not the farmer's fault. An
// answered challenge whose due time passed is followed by the next one, due
// one interval after start-up. It reports whether anything changed.
func (c *Contract) Recover(startup time.Time, scheme proof.Scheme, rng io.Reader) (bool, error) {
	if c.State != ContractLive || startup.Before(c.Due) {
		return false, nil
	}
	due := startup.Add(c.Interval)
	if !c.Answered {
		c.Due = due
		return true, nil
	}
	if c.lastChallenge() {
		c.close(ContractEnded, startup)
		return true, nil
	}
	return true, c.next(due, scheme, rng)
}

// limitFor: uploaded chunks live for their storage period, not for a
// number of challenges.
func limitFor(ch Chunk, terms Terms) int {
	if !ch.End.IsZero() {
		return 0
	}
	return terms.Challenges
}
