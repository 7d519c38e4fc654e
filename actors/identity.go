package actors

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"

	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// ipKeyID names the stored ip_hash key.
const ipKeyID = "ip_hash_key"

// loadIPKey sets the key of the farmers' ip_hash: the configured one, or
// one kept in the store (made on first start), so hashes stay stable.
func (e *Engine) loadIPKey(ctx context.Context) error {
	if len(e.cfg.IPHashKey) > 0 {
		e.ipKey = e.cfg.IPHashKey
		return nil
	}
	rec, err := e.store.Get(ctx, sluice.KindMeta, ipKeyID)
	if err == nil {
		e.ipKey = rec.State
		return nil
	}
	if !errors.Is(err, sluice.ErrNotFound) {
		return fmt.Errorf("load ip hash key: %w", err)
	}
	key := make([]byte, 32)
	if err := e.read(key); err != nil {
		return err
	}
	if err := e.store.Write(ctx, []sluice.Record{{Kind: sluice.KindMeta, ID: ipKeyID, Version: 1, Live: true, State: key}}); err != nil {
		return fmt.Errorf("store ip hash key: %w", err)
	}
	e.ipKey = key
	return nil
}

// ipHash is the public, keyed hash of a farmer's IP: without the node's
// key it cannot be reversed by hashing every address.
func (e *Engine) ipHash(ip string) string {
	if ip == "" {
		return ""
	}
	m := hmac.New(sha256.New, e.ipKey)
	m.Write([]byte(ip))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// locate looks an IP up in the GeoIP database, if one is configured.
func (e *Engine) locate(ip string) *sluice.Location {
	if e.cfg.Locator == nil {
		return nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	return e.cfg.Locator.Locate(a.Unmap())
}

// SignatureID names a signed token request for replay protection.
func SignatureID(address, message string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(address) + "\x00" + message))
	return hex.EncodeToString(sum[:])
}

// ErrReplayed answers a signed request that was already used.
var ErrReplayed = &sluice.Error{Kind: sluice.ErrConflict, Message: "This signed message was already used to get a token; sign a new message."}

// ErrNotWhitelisted answers an address not on the whitelist.
var ErrNotWhitelisted = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Invalid address given: address must be in whitelist."}

// TokenRequest is a validated request for a new token.
type TokenRequest struct {
	Address string
	IP      string
	// Message is the signed message of a signed request ("" when
	// signatures are off); a signed message is accepted once.
	Message string
	Signed  bool
}

// checkWhitelist refuses addresses that are not listed with enough balance.
func (e *Engine) checkWhitelist(ctx context.Context, address string) error {
	if !e.cfg.Whitelist {
		return nil
	}
	rec, err := e.store.Get(ctx, sluice.KindWhitelist, address)
	if errors.Is(err, sluice.ErrNotFound) || (err == nil && !rec.Live) {
		return ErrNotWhitelisted
	}
	if err != nil {
		return unavailable(err)
	}
	bal, ok := new(big.Int).SetString(string(rec.State), 10)
	if !ok || bal.Cmp(e.cfg.MinBalance) < 0 {
		return ErrNotWhitelisted
	}
	return nil
}

// reserveSignature claims a signed message for this request, or refuses a
// replay; release undoes the claim if the token is not made.
func (e *Engine) reserveSignature(ctx context.Context, id string) (release func(), err error) {
	e.pendingMu.Lock()
	if e.pending[id] {
		e.pendingMu.Unlock()
		return nil, ErrReplayed
	}
	e.pending[id] = true
	e.pendingMu.Unlock()
	release = func() {
		e.pendingMu.Lock()
		delete(e.pending, id)
		e.pendingMu.Unlock()
	}
	if _, err := e.store.Get(ctx, sluice.KindSignature, id); err == nil {
		release()
		return nil, ErrReplayed
	} else if !errors.Is(err, sluice.ErrNotFound) {
		release()
		return nil, unavailable(err)
	}
	return release, nil
}

// logDenied logs a refused token request without its message or signature.
func (e *Engine) logDenied(req TokenRequest, err error) {
	e.log.Info(eventTokenDenied, zap.String("address", req.Address), zap.String("reason", sluice.Message(err)))
}
