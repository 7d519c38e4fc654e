package chain

import (
	"context"
	"fmt"
	"github.com/ethereum/go-ethereum"
	"github.com/sluicehq/sluice"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Prepare builds and signs transferFrom(from, payee, amount) without
// sending it, and returns the encoded transaction and its hash. A caller
// records both durably, then calls Send: after a crash it sends the same
// transaction again (or finds it mined) instead of pulling twice. The nonce
// is reserved as if the transaction had been sent.
func (p *Payer) Prepare(ctx context.Context, token, from common.Address, amount *big.Int) ([]byte, common.Hash, error) {
	tx, err := p.signTransferFrom(ctx, token, from, amount)
	if err != nil {
		return nil, common.Hash{}, err
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return nil, common.Hash{}, fmt.Errorf("chain %d: encode transaction: %w", p.cfg.ChainID, err)
	}
	return raw, tx.Hash(), nil
}

// Send broadcasts a transaction made by Prepare. A node that already has
// it (a re-send after a restart) is not an error.
func (p *Payer) Send(ctx context.Context, raw []byte) error {
	tx := new(types.Transaction)
	if err := tx.UnmarshalBinary(raw); err != nil {
		return fmt.Errorf("chain %d: decode transaction: %w", p.cfg.ChainID, err)
	}
	cctx, cancel := p.callCtx(ctx)
	err := p.b.SendTransaction(cctx, tx)
	cancel()
	if err != nil && !strings.Contains(err.Error(), "already known") {
		p.mu.Lock()
		p.haveNonce = false // ask the node for the nonce next time
		p.mu.Unlock()
		return fmt.Errorf("chain %d: send transferFrom: %w", p.cfg.ChainID, err)
	}
	return nil
}

// signTransferFrom estimates, prices and signs transferFrom(from, payee,
// amount) with the next nonce of the payee, reserving that nonce.
func (p *Payer) signTransferFrom(ctx context.Context, token, from common.Address, amount *big.Int) (*types.Transaction, error) {
	if err := p.validate(token, amount); err != nil {
		return nil, err
	}
	if amount.Sign() == 0 {
		return nil, fmt.Errorf("%w: nothing to pull for a zero amount", sluice.ErrInvalid)
	}
	data, err := p.erc20.Pack("transferFrom", from, p.payee, amount)
	if err != nil {
		return nil, fmt.Errorf("chain %d: pack transferFrom: %w", p.cfg.ChainID, err)
	}
	cctx, cancel := p.callCtx(ctx)
	gas, err := p.b.EstimateGas(cctx, ethereum.CallMsg{From: p.payee, To: &token, Data: data})
	cancel()
	if err != nil {
		if reason, ok := revertReason(err); ok {
			return nil, fmt.Errorf("%w (transferFrom %s of token %s from %s would revert: %s)",
				ErrTransferReverted, amount, token, from, reason)
		}
		return nil, fmt.Errorf("chain %d: estimate transferFrom gas: %w", p.cfg.ChainID, err)
	}
	gas += gas / gasMarginDivisor
	cctx, cancel = p.callCtx(ctx)
	tip, err := p.b.SuggestGasTipCap(cctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chain %d: suggest gas tip: %w", p.cfg.ChainID, err)
	}
	cctx, cancel = p.callCtx(ctx)
	head, err := p.b.HeaderByNumber(cctx, nil)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chain %d: read head: %w", p.cfg.ChainID, err)
	}
	if head.BaseFee == nil {
		return nil, fmt.Errorf("chain %d: head block has no base fee (EIP-1559 not active)", p.cfg.ChainID)
	}
	feeCap := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))

	p.mu.Lock()
	defer p.mu.Unlock()
	cctx, cancel = p.callCtx(ctx)
	nonce, err := p.b.PendingNonceAt(cctx, p.payee)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chain %d: read payee nonce: %w", p.cfg.ChainID, err)
	}
	if p.haveNonce && p.nextNonce > nonce {
		nonce = p.nextNonce
	}
	tx, err := types.SignNewTx(p.cfg.PayeeKey, types.LatestSignerForChainID(p.chainID), &types.DynamicFeeTx{
		ChainID: p.chainID, Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas, To: &token, Data: data,
	})
	if err != nil {
		return nil, fmt.Errorf("chain %d: sign transferFrom: %w", p.cfg.ChainID, err)
	}
	p.nextNonce, p.haveNonce = nonce+1, true
	return tx, nil
}
