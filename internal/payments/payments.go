// Package payments adapts chain.Payer (one per configured chain) to the
// string-typed Payments interface of the upload engine.
package payments

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/chain"
)

// Chains are the payers of the configured chains, by chain id.
type Chains struct {
	byID map[string]*chain.Payer
}

// New indexes payers by their chain id.
func New(payers ...*chain.Payer) *Chains {
	c := &Chains{byID: map[string]*chain.Payer{}}
	for _, p := range payers {
		c.byID[strconv.FormatInt(p.ChainID(), 10)] = p
	}
	return c
}

func (c *Chains) payer(chainID string) (*chain.Payer, error) {
	p, ok := c.byID[strings.TrimSpace(chainID)]
	if !ok {
		return nil, &sluice.Error{Kind: sluice.ErrInvalid, Message: fmt.Sprintf("Chain %s is not accepted by this node.", chainID)}
	}
	return p, nil
}

// Payee is the approveAddress on a chain.
func (c *Chains) Payee(chainID string) (string, bool) {
	p, err := c.payer(chainID)
	if err != nil {
		return "", false
	}
	return p.Payee().Hex(), true
}

// Accepts reports whether token is accepted on chainID.
func (c *Chains) Accepts(chainID, token string) bool {
	p, err := c.payer(chainID)
	if err != nil || !common.IsHexAddress(token) {
		return false
	}
	_, ok := p.Token(common.HexToAddress(token))
	return ok
}

// Check verifies allowance and balance.
func (c *Chains) Check(ctx context.Context, chainID, token, from string, amount *big.Int) error {
	p, err := c.payer(chainID)
	if err != nil {
		return err
	}
	return p.Check(ctx, common.HexToAddress(token), common.HexToAddress(from), amount)
}

// Prepare signs the transferFrom without sending it.
func (c *Chains) Prepare(ctx context.Context, chainID, token, from string, amount *big.Int) ([]byte, string, error) {
	p, err := c.payer(chainID)
	if err != nil {
		return nil, "", err
	}
	raw, hash, err := p.Prepare(ctx, common.HexToAddress(token), common.HexToAddress(from), amount)
	return raw, hash.Hex(), err
}

// Send broadcasts a prepared transaction; one the node already knows is
// not an error.
func (c *Chains) Send(ctx context.Context, chainID string, raw []byte) error {
	p, err := c.payer(chainID)
	if err != nil {
		return err
	}
	return p.Send(ctx, raw)
}

// Wait returns once the transaction is confirmed.
func (c *Chains) Wait(ctx context.Context, chainID, hash string) error {
	p, err := c.payer(chainID)
	if err != nil {
		return err
	}
	_, err = p.Wait(ctx, common.HexToHash(hash))
	return err
}

// Paid reports whether hash is a mined transfer of amount; a transaction
// not mined yet is not an error, just not paid.
func (c *Chains) Paid(ctx context.Context, chainID, token, from string, amount *big.Int, hash string) (bool, error) {
	p, err := c.payer(chainID)
	if err != nil {
		return false, err
	}
	ok, err := p.Paid(ctx, common.HexToAddress(token), common.HexToAddress(from), amount, common.HexToHash(hash))
	if errors.Is(err, chain.ErrNotMined) {
		return false, nil
	}
	return ok, err
}
