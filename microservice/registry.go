// Package microservice keeps the registry of storage microservices (the
// Ocean uploader's storage backends) and proxies calls to them with the
// real backend's protocol.
package microservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/chain"
)

// Token is an accepted payment token: a symbol and its contract address.
type Token struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// PaymentOption is one chain a storage type accepts payment on.
type PaymentOption struct {
	ChainID        string  `json:"chainId"`
	AcceptedTokens []Token `json:"acceptedTokens"`
}

// Storage is a registered microservice.
type Storage struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	URL         string          `json:"url"`
	Payment     []PaymentOption `json:"payment"`
	LastSeen    time.Time       `json:"last_seen"`
}

// Store is what the registry needs from the node's store.
type Store interface {
	Write(ctx context.Context, recs []sluice.Record) error
	Live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error
}

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// TTL is how long a registration lasts (default 10 minutes).
	TTL time.Duration
	// Allowed are the addresses whose signature may register a storage.
	Allowed []common.Address
	// Reserved names cannot be registered (the node's built-in types).
	Reserved []string
	Log      *zap.Logger
}

// Registry holds the storage microservices. Each active type has a timer
// that deactivates it TTL after its last registration; nothing scans.
type Registry struct {
	cfg   RegistryConfig
	store Store

	mu     sync.Mutex
	all    map[string]*entry
	closed bool
}

type entry struct {
	s      Storage
	active bool
	timer  *time.Timer
	gen    uint64 // which registration armed the timer
}

// NewRegistry loads the known storages; those registered less than TTL ago
// are active again, with the time they had left.
func NewRegistry(ctx context.Context, store Store, cfg RegistryConfig) (*Registry, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	r := &Registry{cfg: cfg, store: store, all: map[string]*entry{}}
	now := time.Now()
	err := store.Live(ctx, sluice.KindStorage, func(rec sluice.Record) error {
		var s Storage
		if err := json.Unmarshal(rec.State, &s); err != nil {
			cfg.Log.Warn("storage.record_skipped", zap.String("type", rec.ID), zap.Error(err))
			return nil
		}
		e := &entry{s: s}
		r.all[s.Type] = e
		if left := s.LastSeen.Add(cfg.TTL).Sub(now); left > 0 {
			r.arm(e, left)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load storages: %w", err)
	}
	return r, nil
}

// arm (re)starts e's expiry timer; r.mu must be held.
func (r *Registry) arm(e *entry, after time.Duration) {
	e.active = true
	e.gen++
	gen := e.gen
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = time.AfterFunc(after, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if e.gen == gen { // not re-registered since
			e.active = false
			r.cfg.Log.Info("storage.expired", zap.String("type", e.s.Type))
		}
	})
}

// Close stops every timer.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, e := range r.all {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
}

// Active lists the active storages by type.
func (r *Registry) Active() []Storage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Storage
	for _, e := range r.all {
		if e.active {
			out = append(out, e.s)
		}
	}
	slices.SortFunc(out, func(a, b Storage) int { return strings.Compare(a.Type, b.Type) })
	return out
}

// Get returns a storage, whether it is known and whether it is active.
func (r *Registry) Get(typ string) (Storage, bool, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.all[typ]
	if !ok {
		return Storage{}, false, false
	}
	return e.s, true, e.active
}

// registration is either body shape: the microservices' {payment:
// [{chainId, acceptedTokens: [{SYM: addr}]}]} or uploader.js's
// {paymentMethods: [{chainId, acceptedTokens: [{title, value}]}]}.
type registration struct {
	Type           *string         `json:"type"`
	Description    string          `json:"description"`
	URL            *string         `json:"url"`
	Payment        []rawPaymentOpt `json:"payment"`
	PaymentMethods []rawPaymentOpt `json:"paymentMethods"`
	Signature      *string         `json:"signature"`
}

type rawPaymentOpt struct {
	ChainID        json.RawMessage     `json:"chainId"`
	AcceptedTokens []map[string]string `json:"acceptedTokens"`
}

func (o rawPaymentOpt) option() (PaymentOption, error) {
	id, ok := ChainID(o.ChainID)
	if !ok {
		return PaymentOption{}, fmt.Errorf("chainId must be a non-empty string or a whole number")
	}
	opt := PaymentOption{ChainID: id, AcceptedTokens: []Token{}}
	for _, t := range o.AcceptedTokens {
		if title, ok := t["title"]; ok && len(t) == 2 {
			opt.AcceptedTokens = append(opt.AcceptedTokens, Token{Title: title, Value: t["value"]})
			continue
		}
		for sym, addr := range t {
			opt.AcceptedTokens = append(opt.AcceptedTokens, Token{Title: sym, Value: addr})
		}
	}
	// A token is named by its contract's address in getQuote: one that is
	// not an address could never be quoted, only listed.
	for _, t := range opt.AcceptedTokens {
		if !strings.HasPrefix(strings.ToLower(t.Value), "0x") || !common.IsHexAddress(t.Value) {
			return PaymentOption{}, fmt.Errorf("acceptedTokens: %q is not a token contract address", t.Value)
		}
	}
	return opt, nil
}

// ChainID reads a chainId as getQuote and /register take it: a non-empty
// string, or a whole number written as one (80001, not 80001.0, 8e4 or
// -1). It returns the id as text.
func ChainID(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	if _, err := strconv.ParseUint(string(raw), 10, 64); err != nil {
		return "", false
	}
	return string(raw), true
}

// Reply is the body of a /register answer: the real backend's message as a
// JSON string when the registration was taken (the spec fixes those
// strings), and {"error": message}, the uploader API's error format, when
// it was refused.
type Reply struct {
	Message string
	// Refused marks an error reply.
	Refused bool
}

// MarshalJSON writes the reply in its wire shape.
func (r Reply) MarshalJSON() ([]byte, error) {
	if r.Refused {
		return json.Marshal(map[string]string{"error": r.Message})
	}
	return json.Marshal(r.Message)
}

func refuse(code int, msg string) (int, Reply) { return code, Reply{Message: msg, Refused: true} }

// Limits of a registration's fields, in bytes. The type is the storage's
// key in the store (which refuses keys over 32 KiB), in quotes and in
// GET /; real types are short names (arweave, filecoin). The description
// is shown to users in GET /; the URL is where the node calls the
// microservice. Longer is refused with 400 before anything is stored.
const (
	MaxTypeLen        = 64
	MaxDescriptionLen = 1024
	MaxURLLen         = 2048
)

// MaxQuoteIDLen is the longest quote id the node takes from a storage
// backend. The id is the quote's key in the store, and PostgreSQL refuses
// index entries over about 2.7 KB; real ids are UUIDs or hashes.
const MaxQuoteIDLen = 1024

// ValidKey reports whether s, a storage type or a backend's quote id that
// becomes a key in the store, is 1 to limit bytes without control
// characters (PostgreSQL text cannot hold NUL; none belongs in a name).
func ValidKey(s string, limit int) bool {
	if s == "" || len(s) > limit {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// checkLengths refuses a field over its limit, and a type that cannot be
// a key.
func (reg registration) checkLengths() error {
	for _, f := range []struct {
		name  string
		value string
		limit int
	}{
		{"type", *reg.Type, MaxTypeLen},
		{"description", reg.Description, MaxDescriptionLen},
		{"url", *reg.URL, MaxURLLen},
	} {
		if len(f.value) > f.limit {
			return fmt.Errorf("%s is longer than %d bytes", f.name, f.limit)
		}
	}
	if !ValidKey(*reg.Type, MaxTypeLen) {
		return errors.New("type must not hold control characters")
	}
	return nil
}

// Register handles POST /register: a signed registration by an allowed
// address creates, updates or reactivates a storage type. It returns the
// HTTP status and the body to send. A type, description or URL longer
// than MaxTypeLen, MaxDescriptionLen or MaxURLLen is a 400 "Invalid input
// data: ..." before the signature is checked or the store is touched.
func (r *Registry) Register(ctx context.Context, body []byte) (int, Reply) {
	if !utf8.Valid(body) {
		return refuse(400, "Invalid input data: the body is not valid UTF-8.")
	}
	var reg registration
	if err := json.Unmarshal(body, &reg); err != nil || reg.Type == nil || *reg.Type == "" || reg.URL == nil || reg.Signature == nil {
		return refuse(400, "Invalid input data.")
	}
	if err := reg.checkLengths(); err != nil {
		return refuse(400, "Invalid input data: "+err.Error()+".")
	}
	signer, err := chain.RecoverPersonal([]byte(*reg.URL), *reg.Signature)
	if errors.Is(err, chain.ErrSignatureMalleable) {
		return refuse(400, "Invalid signature: a malleable (high-S) signature; sign again with a standard wallet.")
	}
	if err != nil {
		return refuse(400, "Invalid signature.")
	}
	if !slices.Contains(r.cfg.Allowed, signer) {
		return refuse(403, "Registration request received from non-approved address.")
	}
	if slices.Contains(r.cfg.Reserved, *reg.Type) {
		return refuse(400, "Chosen storage type is reserved by this node.")
	}
	u, err := url.Parse(*reg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return refuse(400, "Invalid input data: url must be an absolute http or https URL.")
	}
	opts := reg.Payment
	if opts == nil {
		opts = reg.PaymentMethods
	}
	s := Storage{Type: *reg.Type, Description: reg.Description, URL: *reg.URL, Payment: []PaymentOption{}, LastSeen: time.Now()}
	for _, o := range opts {
		opt, err := o.option()
		if err != nil {
			return refuse(400, "Invalid input data: "+err.Error()+".")
		}
		s.Payment = append(s.Payment, opt)
	}
	state, _ := json.Marshal(s)
	rec := sluice.Record{Kind: sluice.KindStorage, ID: s.Type, Version: uint64(s.LastSeen.UnixNano()), Live: true, State: state}
	if err := r.store.Write(ctx, []sluice.Record{rec}); err != nil {
		r.cfg.Log.Warn("storage.register_failed", zap.String("type", s.Type), zap.Error(err))
		return refuse(503, "Storage registry unavailable, try again later.")
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	e, known := r.all[s.Type]
	wasActive := known && e.active
	if !known {
		e = &entry{}
		r.all[s.Type] = e
	}
	e.s = s
	if !r.closed {
		r.arm(e, r.cfg.TTL)
	}
	switch {
	case wasActive:
		return 200, Reply{Message: "Chosen storage type is already active and registered."}
	case known:
		r.cfg.Log.Info("storage.reactivated", zap.String("type", s.Type))
		return 201, Reply{Message: "Chosen storage type reactivated."}
	}
	r.cfg.Log.Info("storage.registered", zap.String("type", s.Type))
	return 201, Reply{Message: "Desired storage created."}
}
