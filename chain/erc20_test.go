package chain

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/params"

	"github.com/sluicehq/sluice/contracts"
)

// simChainID is the chain id of go-ethereum's simulated backend.
const simChainID = 1337

// testChain is a simulated chain with SluiceToken deployed by minter, and a
// payee account holding ether for gas.
type testChain struct {
	sim    *simulated.Backend
	client simulated.Client
	token  common.Address
	minter *ecdsa.PrivateKey
	payee  *ecdsa.PrivateKey
	users  []*ecdsa.PrivateKey
	erc20  abi.ABI
}

// newTestChain starts a simulated chain where minter, payee and n users
// each own 100 ether, and deploys SluiceToken from the compiled bytecode.
func newTestChain(t *testing.T, users int) *testChain {
	t.Helper()
	c := &testChain{minter: newKey(t), payee: newKey(t), erc20: contracts.TokenABI()}
	alloc := types.GenesisAlloc{}
	fund := func(k *ecdsa.PrivateKey) {
		alloc[crypto.PubkeyToAddress(k.PublicKey)] = types.Account{Balance: ether(100)}
	}
	fund(c.minter)
	fund(c.payee)
	for range users {
		k := newKey(t)
		c.users = append(c.users, k)
		fund(k)
	}
	c.sim = simulated.NewBackend(alloc, simulated.WithBlockGasLimit(30_000_000))
	t.Cleanup(func() { c.sim.Close() })
	c.client = c.sim.Client()

	addr, tx, err := contracts.DeployToken(t.Context(), c.client, c.minter, big.NewInt(simChainID), "Sluice Test Token", "SLT")
	if err != nil {
		t.Fatalf("DeployToken: %v", err)
	}
	c.mine(t, tx)
	code, err := c.client.CodeAt(t.Context(), addr, nil)
	if err != nil || len(code) == 0 {
		t.Fatalf("no code at the deployed token %s (err %v)", addr, err)
	}
	c.token = addr
	return c
}

// config returns a payee configuration for this chain accepting the token.
func (c *testChain) config(confirmations uint64) ChainConfig {
	return ChainConfig{
		ChainID:       simChainID,
		Confirmations: confirmations,
		Tokens:        []Token{{Address: c.token, Symbol: "SLT"}},
		PayeeKey:      c.payee,
		PollInterval:  time.Millisecond,
	}
}

// send signs method(args) on the token with key and returns the pending
// transaction.
func (c *testChain) send(t *testing.T, key *ecdsa.PrivateKey, method string, args ...any) *types.Transaction {
	t.Helper()
	opts := bind.NewKeyedTransactor(key, big.NewInt(simChainID))
	opts.Context = t.Context()
	data, err := c.erc20.Pack(method, args...)
	if err != nil {
		t.Fatalf("pack %s: %v", method, err)
	}
	bound := bind.NewBoundContract(c.token, c.erc20, c.client, c.client, c.client)
	tx, err := bound.RawTransact(opts, data)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return tx
}

// mine commits a block and fails the test unless tx succeeded in it.
func (c *testChain) mine(t *testing.T, tx *types.Transaction) {
	t.Helper()
	c.sim.Commit()
	r, err := c.client.TransactionReceipt(t.Context(), tx.Hash())
	if err != nil {
		t.Fatalf("receipt of %s: %v", tx.Hash(), err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("transaction %s: got status %d, want 1", tx.Hash(), r.Status)
	}
}

// mint gives to amount tokens.
func (c *testChain) mint(t *testing.T, to common.Address, amount *big.Int) {
	t.Helper()
	c.mine(t, c.send(t, c.minter, "mint", to, amount))
}

// approve lets spender pull amount of owner's tokens.
func (c *testChain) approve(t *testing.T, owner *ecdsa.PrivateKey, spender common.Address, amount *big.Int) {
	t.Helper()
	c.mine(t, c.send(t, owner, "approve", spender, amount))
}

// call reads a view method of the token at the latest block.
func (c *testChain) call(t *testing.T, method string, args ...any) any {
	t.Helper()
	data, err := c.erc20.Pack(method, args...)
	if err != nil {
		t.Fatalf("pack %s: %v", method, err)
	}
	out, err := c.client.CallContract(t.Context(), ethereum.CallMsg{To: &c.token, Data: data}, nil)
	if err != nil {
		t.Fatalf("call %s: %v", method, err)
	}
	vals, err := c.erc20.Unpack(method, out)
	if err != nil {
		t.Fatalf("unpack %s: %v", method, err)
	}
	return vals[0]
}

func (c *testChain) balance(t *testing.T, of common.Address) *big.Int {
	t.Helper()
	return c.call(t, "balanceOf", of).(*big.Int)
}

// revertOf simulates method(args) from `from` and returns the revert
// reason, failing the test if it does not revert.
func (c *testChain) revertOf(t *testing.T, from common.Address, method string, args ...any) string {
	t.Helper()
	data, err := c.erc20.Pack(method, args...)
	if err != nil {
		t.Fatalf("pack %s: %v", method, err)
	}
	_, err = c.client.CallContract(t.Context(), ethereum.CallMsg{From: from, To: &c.token, Data: data}, nil)
	if err == nil {
		t.Fatalf("%s did not revert", method)
	}
	reason, ok := revertReason(err)
	if !ok {
		t.Fatalf("%s: got error %v, want a revert", method, err)
	}
	return reason
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func addr(k *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(k.PublicKey) }

func ether(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(params.Ether)) }

// tokens returns n whole tokens (18 decimals).
func tokens(n int64) *big.Int { return ether(n) }

// TestSluiceToken checks the compiled token itself: metadata, minting
// rights, transfers and the revert messages the payer reports.
func TestSluiceToken(t *testing.T) {
	c := newTestChain(t, 2)
	alice, bob := c.users[0], c.users[1]

	if got := c.call(t, "name").(string); got != "Sluice Test Token" {
		t.Errorf("name: got %q, want %q", got, "Sluice Test Token")
	}
	if got := c.call(t, "symbol").(string); got != "SLT" {
		t.Errorf("symbol: got %q, want %q", got, "SLT")
	}
	if got := c.call(t, "decimals").(uint8); got != 18 {
		t.Errorf("decimals: got %d, want 18", got)
	}

	if reason := c.revertOf(t, addr(alice), "mint", addr(alice), tokens(1)); !strings.Contains(reason, "not the minter") {
		t.Errorf("mint by a user: got reason %q, want one about the minter", reason)
	}
	c.mint(t, addr(alice), tokens(10))
	if got := c.call(t, "totalSupply").(*big.Int); got.Cmp(tokens(10)) != 0 {
		t.Errorf("totalSupply: got %s, want %s", got, tokens(10))
	}

	c.mine(t, c.send(t, alice, "transfer", addr(bob), tokens(3)))
	if got := c.balance(t, addr(alice)); got.Cmp(tokens(7)) != 0 {
		t.Errorf("alice after transfer: got %s, want %s", got, tokens(7))
	}
	if got := c.balance(t, addr(bob)); got.Cmp(tokens(3)) != 0 {
		t.Errorf("bob after transfer: got %s, want %s", got, tokens(3))
	}
	if reason := c.revertOf(t, addr(bob), "transfer", addr(alice), tokens(4)); !strings.Contains(reason, "insufficient balance") {
		t.Errorf("transfer above balance: got reason %q, want insufficient balance", reason)
	}

	c.approve(t, alice, addr(bob), tokens(5))
	if got := c.call(t, "allowance", addr(alice), addr(bob)).(*big.Int); got.Cmp(tokens(5)) != 0 {
		t.Errorf("allowance: got %s, want %s", got, tokens(5))
	}
	if reason := c.revertOf(t, addr(bob), "transferFrom", addr(alice), addr(bob), tokens(6)); !strings.Contains(reason, "insufficient allowance") {
		t.Errorf("transferFrom above allowance: got reason %q, want insufficient allowance", reason)
	}
	c.mine(t, c.send(t, bob, "transferFrom", addr(alice), addr(bob), tokens(2)))
	if got := c.call(t, "allowance", addr(alice), addr(bob)).(*big.Int); got.Cmp(tokens(3)) != 0 {
		t.Errorf("allowance after transferFrom: got %s, want %s", got, tokens(3))
	}
	c.approve(t, alice, addr(bob), tokens(100))
	if reason := c.revertOf(t, addr(bob), "transferFrom", addr(alice), addr(bob), tokens(6)); !strings.Contains(reason, "insufficient balance") {
		t.Errorf("transferFrom above balance: got reason %q, want insufficient balance", reason)
	}
}

// TestRevertReasonIgnoresOtherErrors: only EVM reverts count as reverts.
func TestRevertReasonIgnoresOtherErrors(t *testing.T) {
	if _, ok := revertReason(errors.New("connection refused")); ok {
		t.Error("a network error was taken for a revert")
	}
	if _, ok := revertReason(context.DeadlineExceeded); ok {
		t.Error("a timeout was taken for a revert")
	}
}
