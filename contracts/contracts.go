// Package contracts holds SluiceToken, the minimal ERC-20 that local and test
// chains pay with: its Solidity source, the ABI and creation bytecode solc-js
// compiled from it (embedded, so Go builds need no npm), and helpers to
// deploy it, mint and approve.
//
// Regenerate the artifacts after editing SluiceToken.sol:
//
//	cd contracts && npm ci && npm run build
package contracts

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

var (
	//go:embed SluiceToken.abi.json
	tokenABIJSON []byte
	//go:embed SluiceToken.bin
	tokenBinHex []byte
)

// The artifacts are part of the source tree; a broken one is a build
// mistake, so parsing them panics rather than burdening every caller.
var (
	tokenABI = sync.OnceValue(func() abi.ABI {
		parsed, err := abi.JSON(bytes.NewReader(tokenABIJSON))
		if err != nil {
			panic(fmt.Sprintf("contracts: SluiceToken.abi.json: %v", err))
		}
		return parsed
	})
	tokenBytecode = sync.OnceValue(func() []byte {
		code, err := hex.DecodeString(string(bytes.TrimSpace(tokenBinHex)))
		if err != nil || len(code) == 0 {
			panic(fmt.Sprintf("contracts: SluiceToken.bin is not hex bytecode: %v", err))
		}
		return code
	})
)

// TokenABI returns SluiceToken's ABI, parsed once.
func TokenABI() abi.ABI { return tokenABI() }

// TokenBytecode returns a copy of SluiceToken's creation bytecode (without
// constructor arguments).
func TokenBytecode() []byte { return bytes.Clone(tokenBytecode()) }

// Backend is what deploying and transacting need from a node. Both
// *ethclient.Client and simulated.Client satisfy it.
type Backend interface {
	EstimateGas(ctx context.Context, call ethereum.CallMsg) (uint64, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
}

// DeployToken sends the transaction creating a SluiceToken named name with
// the given symbol, from key's account, which becomes the token's minter.
// It returns the address the contract will have once the transaction is
// mined; it does not wait for that.
func DeployToken(ctx context.Context, b Backend, key *ecdsa.PrivateKey, chainID *big.Int, name, symbol string) (common.Address, *types.Transaction, error) {
	args, err := TokenABI().Pack("", name, symbol)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("contracts: pack constructor: %w", err)
	}
	tx, err := transact(ctx, b, key, chainID, nil, append(TokenBytecode(), args...))
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("contracts: deploy SluiceToken: %w", err)
	}
	return crypto.CreateAddress(crypto.PubkeyToAddress(key.PublicKey), tx.Nonce()), tx, nil
}

// Mint sends token.mint(to, amount) from key's account, which must be the
// token's deployer.
func Mint(ctx context.Context, b Backend, key *ecdsa.PrivateKey, chainID *big.Int, token, to common.Address, amount *big.Int) (*types.Transaction, error) {
	return call(ctx, b, key, chainID, token, "mint", to, amount)
}

// Approve sends token.approve(spender, amount) from key's account.
func Approve(ctx context.Context, b Backend, key *ecdsa.PrivateKey, chainID *big.Int, token, spender common.Address, amount *big.Int) (*types.Transaction, error) {
	return call(ctx, b, key, chainID, token, "approve", spender, amount)
}

func call(ctx context.Context, b Backend, key *ecdsa.PrivateKey, chainID *big.Int, token common.Address, method string, args ...any) (*types.Transaction, error) {
	data, err := TokenABI().Pack(method, args...)
	if err != nil {
		return nil, fmt.Errorf("contracts: pack %s: %w", method, err)
	}
	tx, err := transact(ctx, b, key, chainID, &token, data)
	if err != nil {
		return nil, fmt.Errorf("contracts: %s: %w", method, err)
	}
	return tx, nil
}

// transact signs and sends an EIP-1559 transaction to (nil: a contract
// creation) with data, gas estimated, the fee cap allowing the base fee to
// double. The nonce is the account's pending nonce: callers sending
// concurrently from one account must serialise.
func transact(ctx context.Context, b Backend, key *ecdsa.PrivateKey, chainID *big.Int, to *common.Address, data []byte) (*types.Transaction, error) {
	if key == nil || chainID == nil {
		return nil, errors.New("missing key or chain ID")
	}
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := b.PendingNonceAt(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("pending nonce: %w", err)
	}
	tip, err := b.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, fmt.Errorf("suggest tip: %w", err)
	}
	head, err := b.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("latest header: %w", err)
	}
	if head.BaseFee == nil {
		return nil, errors.New("chain has no base fee (pre-London): EIP-1559 transactions unsupported")
	}
	gas, err := b.EstimateGas(ctx, ethereum.CallMsg{From: from, To: to, Data: data})
	if err != nil {
		return nil, fmt.Errorf("estimate gas: %w", err)
	}
	feeCap := new(big.Int).Add(tip, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(chainID), &types.DynamicFeeTx{
		ChainID: chainID, Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas, To: to, Data: data,
	})
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if err := b.SendTransaction(ctx, tx); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	return tx, nil
}
