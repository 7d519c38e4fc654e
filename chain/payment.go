package chain

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/contracts"
)

// Defaults for the zero values of ChainConfig's durations.
const (
	DefaultCallTimeout  = 15 * time.Second
	DefaultPollInterval = time.Second
)

// gasMarginDivisor adds 1/5 (20%) to the estimated gas of a transferFrom,
// in case the token's state changes between estimation and inclusion.
const gasMarginDivisor = 5

// Payment errors. Check, Pull and Wait wrap them with the amounts and
// addresses involved (errors.Is finds them; sluice.Message returns the
// public message without the details).
var (
	// ErrAllowanceTooLow: the payer has not approved the payee for the amount.
	ErrAllowanceTooLow = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Allowance is less than the quoted token amount."}
	// ErrBalanceTooLow: the payer holds fewer tokens than the amount.
	ErrBalanceTooLow = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Token balance is less than the quoted token amount."}
	// ErrTransferReverted: transferFrom reverted, either in gas estimation
	// (then nothing was sent) or on chain (receipt status 0).
	ErrTransferReverted = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Payment transfer failed."}
	// ErrTokenNotAccepted: the token is not among the chain's configured tokens.
	ErrTokenNotAccepted = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Payment token not accepted."}
	// ErrNotMined: Paid found no receipt for the transaction. It may still
	// be pending or it may have been dropped; this is not "not paid".
	ErrNotMined = errors.New("chain: transaction not mined")
)

// ChainConfig is one EVM chain Sluice accepts ERC-20 payments on.
type ChainConfig struct {
	// ChainID is the EIP-155 chain id transactions are signed for.
	ChainID int64
	// RPCURL is the node Dial connects to (http(s), ws(s) or IPC path).
	RPCURL string
	// Confirmations is how many blocks Wait wants, counting the block that
	// holds the transfer as the first, as ethers does (0 and 1 both mean
	// mined).
	Confirmations uint64
	// Tokens are the accepted ERC-20 tokens; Check and Pull refuse others.
	Tokens []Token
	// PayeeKey is the key of the account that receives payments and sends
	// the transferFrom transactions (paying their gas). Its address is the
	// approveAddress returned with quotes.
	PayeeKey *ecdsa.PrivateKey
	// CallTimeout bounds every single RPC call (default DefaultCallTimeout).
	CallTimeout time.Duration
	// PollInterval is how often Wait asks for the receipt and the head
	// (default DefaultPollInterval).
	PollInterval time.Duration
}

// Token is an accepted ERC-20 token.
type Token struct {
	Address common.Address
	Symbol  string
}

// Backend is the part of an Ethereum RPC client the Payer uses. Both
// *ethclient.Client and the simulated backend's simulated.Client satisfy it.
type Backend interface {
	ethereum.ContractCaller    // CallContract
	ethereum.GasEstimator      // EstimateGas
	ethereum.BlockNumberReader // BlockNumber
	ethereum.ChainIDReader     // ChainID
	ethereum.TransactionSender // SendTransaction
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	TransactionReceipt(ctx context.Context, txHash common.Hash) (*types.Receipt, error)
}

// Payer is the payee side of ERC-20 payments on one chain: it checks a
// user's allowance and balance, pulls the tokens with transferFrom signed by
// the payee key, and waits for the transfer to be confirmed. It is safe for
// concurrent use.
type Payer struct {
	cfg     ChainConfig
	b       Backend
	chainID *big.Int
	payee   common.Address
	erc20   abi.ABI
	closeFn func()

	// mu serialises the nonce choice, signing and sending of Pull, so
	// concurrent Pulls from the same payee get distinct consecutive nonces.
	mu sync.Mutex
	// nextNonce is the nonce after the last transaction this Payer sent,
	// valid when haveNonce. Pull uses max(PendingNonceAt, nextNonce): the
	// node's pending count is authoritative (it sees other senders of the
	// key and restarts), the local one covers nodes behind a load balancer
	// whose pending state lags the last send. A failed send forgets it.
	nextNonce uint64
	haveNonce bool
}

// NewPayer returns a Payer for cfg that talks to the chain through b. It
// makes no calls. cfg.PayeeKey must be set (NewPayer panics otherwise: the
// configuration is validated before this).
func NewPayer(cfg ChainConfig, b Backend) *Payer {
	if cfg.PayeeKey == nil {
		panic("chain: NewPayer needs a PayeeKey")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	cfg.Tokens = append([]Token(nil), cfg.Tokens...)
	return &Payer{
		cfg:     cfg,
		b:       b,
		chainID: big.NewInt(cfg.ChainID),
		payee:   crypto.PubkeyToAddress(cfg.PayeeKey.PublicKey),
		erc20:   contracts.TokenABI(),
	}
}

// Dial connects to cfg.RPCURL (bounded by cfg.CallTimeout), checks that
// the node serves cfg.ChainID, and returns a Payer using it. Close the
// Payer to close the connection.
func Dial(ctx context.Context, cfg ChainConfig) (*Payer, error) {
	if cfg.PayeeKey == nil {
		return nil, errors.New("chain: no payee key configured")
	}
	timeout := cfg.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := ethclient.DialContext(dctx, cfg.RPCURL)
	if err != nil {
		return nil, fmt.Errorf("chain %d: dial %s: %w", cfg.ChainID, cfg.RPCURL, err)
	}
	id, err := client.ChainID(dctx)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("chain %d: read chain id from %s: %w", cfg.ChainID, cfg.RPCURL, err)
	}
	if id.Cmp(big.NewInt(cfg.ChainID)) != 0 {
		client.Close()
		return nil, fmt.Errorf("chain %d: %s serves chain %s", cfg.ChainID, cfg.RPCURL, id)
	}
	p := NewPayer(cfg, client)
	p.closeFn = client.Close
	return p, nil
}

// Close closes the connection opened by Dial. It does nothing for a Payer
// made by NewPayer: whoever made the backend closes it.
func (p *Payer) Close() {
	if p.closeFn != nil {
		p.closeFn()
	}
}

// Payee returns the payee account, the approveAddress users approve.
func (p *Payer) Payee() common.Address { return p.payee }

// ChainID returns the configured chain id.
func (p *Payer) ChainID() int64 { return p.cfg.ChainID }

// Token returns the accepted token at address, if there is one.
func (p *Payer) Token(address common.Address) (Token, bool) {
	for _, t := range p.cfg.Tokens {
		if t.Address == address {
			return t, true
		}
	}
	return Token{}, false
}

// Check verifies that from has approved the payee for at least amount of
// token and holds at least amount, as of the latest block. It returns an
// error wrapping ErrAllowanceTooLow or ErrBalanceTooLow when not. An amount
// of zero needs no chain call and passes.
func (p *Payer) Check(ctx context.Context, token, from common.Address, amount *big.Int) error {
	if err := p.validate(token, amount); err != nil {
		return err
	}
	if amount.Sign() == 0 {
		return nil
	}
	allowance, err := p.callUint(ctx, token, "allowance", from, p.payee)
	if err != nil {
		return err
	}
	if allowance.Cmp(amount) < 0 {
		return fmt.Errorf("%w (allowance of %s for %s on token %s is %s, need %s)",
			ErrAllowanceTooLow, from, p.payee, token, allowance, amount)
	}
	balance, err := p.callUint(ctx, token, "balanceOf", from)
	if err != nil {
		return err
	}
	if balance.Cmp(amount) < 0 {
		return fmt.Errorf("%w (balance of %s on token %s is %s, need %s)",
			ErrBalanceTooLow, from, token, balance, amount)
	}
	return nil
}

// Pull sends transferFrom(from, payee, amount) on token, signed by the
// payee key as an EIP-1559 transaction, and returns its hash as soon as the
// node accepted it; Wait follows it. Callers record the hash before doing
// anything else so that a restart can ask Paid instead of pulling twice.
//
// Gas is estimated (plus a 20% margin). When estimation reverts (allowance
// or balance too low as of the latest block), Pull sends nothing and
// returns an error wrapping ErrTransferReverted with the revert reason;
// other estimation failures are returned as they are.
func (p *Payer) Pull(ctx context.Context, token, from common.Address, amount *big.Int) (common.Hash, error) {
	tx, err := p.signTransferFrom(ctx, token, from, amount)
	if err != nil {
		return common.Hash{}, err
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return common.Hash{}, fmt.Errorf("chain %d: encode transaction: %w", p.cfg.ChainID, err)
	}
	if err := p.Send(ctx, raw); err != nil {
		return common.Hash{}, err
	}
	return tx.Hash(), nil
}

// Wait polls every PollInterval until tx is mined and Confirmations blocks
// are on top of its block, then returns its receipt. The receipt is read
// again on every poll, so after a reorg the returned one is current. A
// transaction that is not found (not yet mined, or unknown) and RPC errors
// keep it waiting until ctx ends; it then returns ctx's error joined with
// the last RPC error. A confirmed receipt with status 0 is returned with an
// error wrapping ErrTransferReverted.
func (p *Payer) Wait(ctx context.Context, tx common.Hash) (*types.Receipt, error) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("chain %d: wait for %s: %w", p.cfg.ChainID, tx, errors.Join(ctx.Err(), lastErr))
			}
			return nil, fmt.Errorf("chain %d: wait for %s: %w", p.cfg.ChainID, tx, ctx.Err())
		case <-timer.C:
		}
		receipt, confirmed, err := p.poll(ctx, tx)
		switch {
		case err != nil:
			lastErr = err
		case confirmed && receipt.Status != types.ReceiptStatusSuccessful:
			return receipt, fmt.Errorf("%w (transaction %s reverted in block %s)", ErrTransferReverted, tx, receipt.BlockNumber)
		case confirmed:
			return receipt, nil
		}
		timer.Reset(p.cfg.PollInterval)
	}
}

// poll reads tx's receipt and the head once; confirmed says whether enough
// blocks are on top. A missing receipt is (nil, false, nil).
func (p *Payer) poll(ctx context.Context, tx common.Hash) (*types.Receipt, bool, error) {
	cctx, cancel := p.callCtx(ctx)
	receipt, err := p.b.TransactionReceipt(cctx, tx)
	cancel()
	if errors.Is(err, ethereum.NotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read receipt: %w", err)
	}
	cctx, cancel = p.callCtx(ctx)
	head, err := p.b.BlockNumber(cctx)
	cancel()
	if err != nil {
		return nil, false, fmt.Errorf("read head: %w", err)
	}
	// The block holding the transfer is its first confirmation (as ethers
	// counts them): Confirmations 1 means mined, 2 one block on top.
	mined := receipt.BlockNumber.Uint64()
	return receipt, head >= mined && head-mined+1 >= p.cfg.Confirmations, nil
}

// Paid reports whether tx is mined with status 1 and its receipt holds the
// Transfer(from → payee, amount) event of token: the re-check a restarted
// node makes for a recorded transaction instead of pulling again. It does
// not count confirmations (call Wait first for that). (false, nil) means the
// transaction is mined but is not that payment; a transaction without a
// receipt gives an error wrapping ErrNotMined, since it may still be
// included. It also catches tokens that return false instead of reverting.
func (p *Payer) Paid(ctx context.Context, token, from common.Address, amount *big.Int, tx common.Hash) (bool, error) {
	if amount == nil || amount.Sign() < 0 {
		return false, fmt.Errorf("%w: invalid amount %v", sluice.ErrInvalid, amount)
	}
	cctx, cancel := p.callCtx(ctx)
	receipt, err := p.b.TransactionReceipt(cctx, tx)
	cancel()
	if errors.Is(err, ethereum.NotFound) {
		return false, fmt.Errorf("%w: %s on chain %d", ErrNotMined, tx, p.cfg.ChainID)
	}
	if err != nil {
		return false, fmt.Errorf("chain %d: read receipt of %s: %w", p.cfg.ChainID, tx, err)
	}
	if receipt.Status != types.ReceiptStatusSuccessful {
		return false, nil
	}
	transfer := p.erc20.Events["Transfer"]
	for _, l := range receipt.Logs {
		if l.Address != token || len(l.Topics) != 3 || l.Topics[0] != transfer.ID {
			continue
		}
		if common.BytesToAddress(l.Topics[1].Bytes()) != from || common.BytesToAddress(l.Topics[2].Bytes()) != p.payee {
			continue
		}
		vals, err := transfer.Inputs.NonIndexed().Unpack(l.Data)
		if err != nil || len(vals) != 1 {
			continue
		}
		if v, ok := vals[0].(*big.Int); ok && v.Cmp(amount) == 0 {
			return true, nil
		}
	}
	return false, nil
}

// validate refuses unknown tokens and missing or negative amounts.
func (p *Payer) validate(token common.Address, amount *big.Int) error {
	if amount == nil || amount.Sign() < 0 {
		return fmt.Errorf("%w: invalid amount %v", sluice.ErrInvalid, amount)
	}
	if _, ok := p.Token(token); !ok {
		return fmt.Errorf("%w (token %s on chain %d)", ErrTokenNotAccepted, token, p.cfg.ChainID)
	}
	return nil
}

// callUint calls a view method of token returning one uint256, at the
// latest block.
func (p *Payer) callUint(ctx context.Context, token common.Address, method string, args ...any) (*big.Int, error) {
	data, err := p.erc20.Pack(method, args...)
	if err != nil {
		return nil, fmt.Errorf("chain %d: pack %s: %w", p.cfg.ChainID, method, err)
	}
	cctx, cancel := p.callCtx(ctx)
	out, err := p.b.CallContract(cctx, ethereum.CallMsg{To: &token, Data: data}, nil)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chain %d: call %s on %s: %w", p.cfg.ChainID, method, token, err)
	}
	vals, err := p.erc20.Unpack(method, out)
	if err != nil {
		return nil, fmt.Errorf("chain %d: %s on %s returned %d bytes: %w", p.cfg.ChainID, method, token, len(out), err)
	}
	v, ok := vals[0].(*big.Int)
	if !ok {
		return nil, fmt.Errorf("chain %d: %s on %s: unexpected result %T", p.cfg.ChainID, method, token, vals[0])
	}
	return v, nil
}

// callCtx bounds one RPC call by CallTimeout.
func (p *Payer) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.cfg.CallTimeout)
}

// revertReason says whether err is an EVM revert reported by the node
// (JSON-RPC error code 3, or "execution reverted" in the message), and
// decodes its Error(string) reason when there is one.
func revertReason(err error) (string, bool) {
	var rerr rpc.Error
	isRevert := (errors.As(err, &rerr) && rerr.ErrorCode() == 3) ||
		strings.Contains(err.Error(), "execution reverted")
	if !isRevert {
		return "", false
	}
	var derr rpc.DataError
	if errors.As(err, &derr) {
		if s, ok := derr.ErrorData().(string); ok {
			if b, decErr := hexutil.Decode(s); decErr == nil {
				if reason, unpackErr := abi.UnpackRevert(b); unpackErr == nil {
					return reason, true
				}
			}
		}
	}
	return err.Error(), true
}
