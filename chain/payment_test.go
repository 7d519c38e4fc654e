package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"github.com/sluicehq/sluice"
)

// Both clients the payer is used with satisfy Backend.
var (
	_ Backend = (*ethclient.Client)(nil)
	_ Backend = simulated.Client(nil)
)

// stepTimeout bounds every wait for a condition in these tests.
const stepTimeout = 20 * time.Second

// spyBackend passes every call to the simulated chain and reports when
// Wait found no receipt and which head it read, so a test can advance the
// chain block by block in step with Wait instead of sleeping.
type spyBackend struct {
	Backend
	events chan string
}

func newSpy(b Backend) *spyBackend { return &spyBackend{Backend: b, events: make(chan string, 64)} }

func (s *spyBackend) TransactionReceipt(ctx context.Context, h common.Hash) (*types.Receipt, error) {
	r, err := s.Backend.TransactionReceipt(ctx, h)
	if errors.Is(err, ethereum.NotFound) {
		s.note("receipt missing")
	}
	return r, err
}

func (s *spyBackend) BlockNumber(ctx context.Context) (uint64, error) {
	n, err := s.Backend.BlockNumber(ctx)
	if err == nil {
		s.note(fmt.Sprintf("head %d", n))
	}
	return n, err
}

// note drops the event when nobody reads: Wait keeps polling, so a later
// one follows.
func (s *spyBackend) note(e string) {
	select {
	case s.events <- e:
	default:
	}
}

// drain forgets the events reported so far.
func (s *spyBackend) drain() {
	for {
		select {
		case <-s.events:
		default:
			return
		}
	}
}

// await returns once the backend reports want, or fails the test.
func (s *spyBackend) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.NewTimer(stepTimeout)
	defer timeout.Stop()
	for {
		select {
		case e := <-s.events:
			if e == want {
				return
			}
		case <-timeout.C:
			t.Fatalf("Wait did not poll with %q within %s", want, stepTimeout)
		}
	}
}

type waitResult struct {
	receipt *types.Receipt
	err     error
}

// startWait runs p.Wait in the background.
func startWait(ctx context.Context, p *Payer, tx common.Hash) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		r, err := p.Wait(ctx, tx)
		done <- waitResult{r, err}
	}()
	return done
}

func assertWaiting(t *testing.T, done <-chan waitResult, when string) {
	t.Helper()
	select {
	case r := <-done:
		t.Fatalf("Wait returned %v (err %v) %s, want it still waiting", r.receipt, r.err, when)
	default:
	}
}

func awaitResult(t *testing.T, done <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(stepTimeout):
		t.Fatalf("Wait did not return within %s", stepTimeout)
		return waitResult{}
	}
}

func (c *testChain) head(t *testing.T) uint64 {
	t.Helper()
	n, err := c.client.BlockNumber(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (c *testChain) payeeNonce(t *testing.T) uint64 {
	t.Helper()
	n, err := c.client.PendingNonceAt(t.Context(), addr(c.payee))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func wantBalance(t *testing.T, c *testChain, who string, of common.Address, want *big.Int) {
	t.Helper()
	if got := c.balance(t, of); got.Cmp(want) != 0 {
		t.Errorf("balance of %s: got %s, want %s", who, got, want)
	}
}

// TestPaymentFlow: check, pull, wait for the confirmations while the test
// mines block by block, then the tokens have moved and Paid agrees.
func TestPaymentFlow(t *testing.T) {
	const confirmations = 2
	c := newTestChain(t, 1)
	user := c.users[0]
	amount := tokens(5)
	spy := newSpy(c.client)
	p := NewPayer(c.config(confirmations), spy)
	if p.Payee() != addr(c.payee) {
		t.Fatalf("Payee: got %s, want %s", p.Payee(), addr(c.payee))
	}
	c.mint(t, addr(user), tokens(8))
	c.approve(t, user, p.Payee(), amount)
	ctx := t.Context()

	if err := p.Check(ctx, c.token, addr(user), amount); err != nil {
		t.Fatalf("Check: %v", err)
	}
	hash, err := p.Pull(ctx, c.token, addr(user), amount)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if _, err := p.Paid(ctx, c.token, addr(user), amount, hash); !errors.Is(err, ErrNotMined) {
		t.Errorf("Paid before mining: got %v, want ErrNotMined", err)
	}

	spy.drain()
	done := startWait(ctx, p, hash)
	spy.await(t, "receipt missing")
	assertWaiting(t, done, "before the transfer was mined")
	c.sim.Commit()
	mined := c.head(t)
	// The transfer's own block is its first confirmation.
	for i := range confirmations - 1 {
		spy.await(t, fmt.Sprintf("head %d", mined+uint64(i)))
		assertWaiting(t, done, fmt.Sprintf("with %d confirmations", i+1))
		c.sim.Commit()
	}
	res := awaitResult(t, done)
	if res.err != nil {
		t.Fatalf("Wait: %v", res.err)
	}
	if res.receipt.Status != types.ReceiptStatusSuccessful || res.receipt.TxHash != hash {
		t.Fatalf("Wait: got receipt of %s with status %d, want %s with status 1", res.receipt.TxHash, res.receipt.Status, hash)
	}
	if got := res.receipt.BlockNumber.Uint64(); got != mined {
		t.Errorf("receipt block: got %d, want %d", got, mined)
	}

	wantBalance(t, c, "user", addr(user), tokens(3))
	wantBalance(t, c, "payee", p.Payee(), amount)

	paid, err := p.Paid(ctx, c.token, addr(user), amount, hash)
	if err != nil || !paid {
		t.Errorf("Paid: got %v, %v, want true, nil", paid, err)
	}
	if paid, err := p.Paid(ctx, c.token, addr(user), tokens(4), hash); err != nil || paid {
		t.Errorf("Paid for another amount: got %v, %v, want false, nil", paid, err)
	}
	if paid, err := p.Paid(ctx, c.token, addr(c.minter), amount, hash); err != nil || paid {
		t.Errorf("Paid for another sender: got %v, %v, want false, nil", paid, err)
	}
	if paid, err := p.Paid(ctx, addr(c.minter), addr(user), amount, hash); err != nil || paid {
		t.Errorf("Paid for another token: got %v, %v, want false, nil", paid, err)
	}
	if _, err := p.Paid(ctx, c.token, addr(user), amount, common.Hash{1}); !errors.Is(err, ErrNotMined) {
		t.Errorf("Paid for an unknown transaction: got %v, want ErrNotMined", err)
	}
}

// TestCheckAllowanceTooLow: Check refuses and nothing is sent.
func TestCheckAllowanceTooLow(t *testing.T) {
	c := newTestChain(t, 1)
	user := c.users[0]
	p := NewPayer(c.config(0), c.client)
	c.mint(t, addr(user), tokens(10))
	c.approve(t, user, p.Payee(), tokens(4))
	nonce := c.payeeNonce(t)

	err := p.Check(t.Context(), c.token, addr(user), tokens(5))
	if !errors.Is(err, ErrAllowanceTooLow) {
		t.Fatalf("Check: got %v, want ErrAllowanceTooLow", err)
	}
	if !strings.Contains(err.Error(), tokens(4).String()) || !strings.Contains(err.Error(), tokens(5).String()) {
		t.Errorf("Check error %q lacks the allowance and the amount", err)
	}
	if got, want := sluice.Message(err), ErrAllowanceTooLow.Message; got != want {
		t.Errorf("public message: got %q, want %q", got, want)
	}
	if !errors.Is(err, sluice.ErrInvalid) {
		t.Errorf("kind: got %v, want ErrInvalid", sluice.Kind(err))
	}
	if got := c.payeeNonce(t); got != nonce {
		t.Errorf("payee nonce: got %d, want %d (no transaction)", got, nonce)
	}
}

// TestCheckBalanceTooLow: enough allowance, not enough tokens.
func TestCheckBalanceTooLow(t *testing.T) {
	c := newTestChain(t, 1)
	user := c.users[0]
	p := NewPayer(c.config(0), c.client)
	c.mint(t, addr(user), tokens(3))
	c.approve(t, user, p.Payee(), tokens(100))

	err := p.Check(t.Context(), c.token, addr(user), tokens(5))
	if !errors.Is(err, ErrBalanceTooLow) {
		t.Fatalf("Check: got %v, want ErrBalanceTooLow", err)
	}
	if !strings.Contains(err.Error(), tokens(3).String()) {
		t.Errorf("Check error %q lacks the balance", err)
	}
	if err := p.Check(t.Context(), c.token, addr(user), tokens(3)); err != nil {
		t.Errorf("Check for the whole balance: %v", err)
	}
}

// TestCheckAndPullRefuse: unknown tokens and bad amounts are refused
// before any chain call; a zero amount passes Check without one.
func TestCheckAndPullRefuse(t *testing.T) {
	c := newTestChain(t, 1)
	user := addr(c.users[0])
	p := NewPayer(c.config(0), c.client)
	ctx := t.Context()

	other := common.HexToAddress("0x00000000000000000000000000000000000000aa")
	if err := p.Check(ctx, other, user, tokens(1)); !errors.Is(err, ErrTokenNotAccepted) {
		t.Errorf("Check on another token: got %v, want ErrTokenNotAccepted", err)
	}
	if _, err := p.Pull(ctx, other, user, tokens(1)); !errors.Is(err, ErrTokenNotAccepted) {
		t.Errorf("Pull on another token: got %v, want ErrTokenNotAccepted", err)
	}
	if err := p.Check(ctx, c.token, user, big.NewInt(-1)); !errors.Is(err, sluice.ErrInvalid) {
		t.Errorf("Check of a negative amount: got %v, want ErrInvalid", err)
	}
	if err := p.Check(ctx, c.token, user, nil); !errors.Is(err, sluice.ErrInvalid) {
		t.Errorf("Check of a nil amount: got %v, want ErrInvalid", err)
	}
	if err := p.Check(ctx, c.token, user, new(big.Int)); err != nil {
		t.Errorf("Check of zero: got %v, want nil", err)
	}
	if _, err := p.Pull(ctx, c.token, user, new(big.Int)); !errors.Is(err, sluice.ErrInvalid) {
		t.Errorf("Pull of zero: got %v, want ErrInvalid", err)
	}
	if tok, ok := p.Token(c.token); !ok || tok.Symbol != "SLT" {
		t.Errorf("Token: got %v, %v, want SLT, true", tok, ok)
	}
}

// TestPullRevertsInEstimation: skipping Check with too little allowance,
// transferFrom would revert; Pull reports ErrTransferReverted with the
// token's reason and sends nothing.
func TestPullRevertsInEstimation(t *testing.T) {
	c := newTestChain(t, 1)
	user := c.users[0]
	p := NewPayer(c.config(0), c.client)
	c.mint(t, addr(user), tokens(10))
	c.approve(t, user, p.Payee(), tokens(1))
	nonce := c.payeeNonce(t)

	_, err := p.Pull(t.Context(), c.token, addr(user), tokens(5))
	if !errors.Is(err, ErrTransferReverted) {
		t.Fatalf("Pull: got %v, want ErrTransferReverted", err)
	}
	if !strings.Contains(err.Error(), "insufficient allowance") {
		t.Errorf("Pull error %q lacks the revert reason", err)
	}
	if got := c.payeeNonce(t); got != nonce {
		t.Errorf("payee nonce: got %d, want %d (nothing sent)", got, nonce)
	}
	wantBalance(t, c, "user", addr(user), tokens(10))
}

// TestWaitReverted: two Pulls against one approval both pass estimation on
// the latest block; in the next block the second reverts on chain. Wait
// reports ErrTransferReverted with the status-0 receipt, Paid says false,
// and the user paid once.
func TestWaitReverted(t *testing.T) {
	c := newTestChain(t, 1)
	user := c.users[0]
	amount := tokens(5)
	p := NewPayer(c.config(1), c.client)
	c.mint(t, addr(user), tokens(20))
	c.approve(t, user, p.Payee(), amount)
	ctx := t.Context()

	first, err := p.Pull(ctx, c.token, addr(user), amount)
	if err != nil {
		t.Fatalf("first Pull: %v", err)
	}
	second, err := p.Pull(ctx, c.token, addr(user), amount)
	if err != nil {
		t.Fatalf("second Pull: %v", err)
	}
	c.sim.Commit()
	c.sim.Commit()

	wctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if r, err := p.Wait(wctx, first); err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("Wait for the first: got %v, %v, want a successful receipt", r, err)
	}
	r, err := p.Wait(wctx, second)
	if !errors.Is(err, ErrTransferReverted) {
		t.Fatalf("Wait for the second: got %v, want ErrTransferReverted", err)
	}
	if r == nil || r.Status != types.ReceiptStatusFailed {
		t.Errorf("Wait for the second: got receipt %v, want one with status 0", r)
	}
	if paid, err := p.Paid(ctx, c.token, addr(user), amount, second); err != nil || paid {
		t.Errorf("Paid for the reverted one: got %v, %v, want false, nil", paid, err)
	}
	wantBalance(t, c, "user", addr(user), tokens(15))
	wantBalance(t, c, "payee", p.Payee(), amount)
}

// TestWaitUntilContextEnds: a transaction that never appears keeps Wait
// polling until its context ends.
func TestWaitUntilContextEnds(t *testing.T) {
	c := newTestChain(t, 0)
	spy := newSpy(c.client)
	p := NewPayer(c.config(0), spy)
	ctx, cancel := context.WithCancel(t.Context())
	done := startWait(ctx, p, common.Hash{0xde, 0xad})
	spy.await(t, "receipt missing")
	c.sim.Commit()
	spy.await(t, "receipt missing")
	assertWaiting(t, done, "for an unknown transaction")
	cancel()
	if res := awaitResult(t, done); !errors.Is(res.err, context.Canceled) {
		t.Errorf("Wait: got %v, want context.Canceled", res.err)
	}
}

// TestConcurrentPulls: five users paid at once get five distinct,
// consecutive nonces from the one payee account, and all succeed.
func TestConcurrentPulls(t *testing.T) {
	const users = 5
	c := newTestChain(t, users)
	p := NewPayer(c.config(1), c.client)
	amount := tokens(7)
	for _, u := range c.users {
		c.mint(t, addr(u), tokens(10))
		c.approve(t, u, p.Payee(), amount)
	}
	start := c.payeeNonce(t)
	ctx := t.Context()

	hashes := make([]common.Hash, users)
	errs := make([]error, users)
	var wg sync.WaitGroup
	for i, u := range c.users {
		wg.Go(func() {
			if errs[i] = p.Check(ctx, c.token, addr(u), amount); errs[i] != nil {
				return
			}
			hashes[i], errs[i] = p.Pull(ctx, c.token, addr(u), amount)
		})
	}
	wg.Wait()
	nonces := map[uint64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
		tx, _, err := c.client.TransactionByHash(ctx, hashes[i])
		if err != nil {
			t.Fatalf("user %d: transaction %s: %v", i, hashes[i], err)
		}
		nonces[tx.Nonce()] = true
	}
	for n := start; n < start+users; n++ {
		if !nonces[n] {
			t.Errorf("nonces: got %v, want %d..%d each once", nonces, start, start+users-1)
			break
		}
	}

	c.sim.Commit()
	c.sim.Commit()
	wctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	for i, h := range hashes {
		r, err := p.Wait(wctx, h)
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Errorf("user %d: Wait got %v, %v, want a successful receipt", i, r, err)
			continue
		}
		if paid, err := p.Paid(ctx, c.token, addr(c.users[i]), amount, h); err != nil || !paid {
			t.Errorf("user %d: Paid got %v, %v, want true, nil", i, paid, err)
		}
		wantBalance(t, c, fmt.Sprintf("user %d", i), addr(c.users[i]), tokens(3))
	}
	wantBalance(t, c, "payee", p.Payee(), new(big.Int).Mul(amount, big.NewInt(users)))
}

// TestDialUnreachable: Dial fails within CallTimeout when no node answers.
func TestDialUnreachable(t *testing.T) {
	cfg := ChainConfig{ChainID: 1, RPCURL: "http://127.0.0.1:1", PayeeKey: newKey(t), CallTimeout: 2 * time.Second}
	if _, err := Dial(t.Context(), cfg); err == nil {
		t.Fatal("Dial to a closed port: got no error")
	}
	cfg.PayeeKey = nil
	if _, err := Dial(t.Context(), cfg); err == nil {
		t.Fatal("Dial without a payee key: got no error")
	}
}
