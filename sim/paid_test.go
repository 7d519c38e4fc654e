package sim_test

import (
	"context"
	"crypto/ecdsa"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/chain"
	"github.com/sluicehq/sluice/contracts"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/internal/payments"
	"github.com/sluicehq/sluice/microservice"
	"github.com/sluicehq/sluice/sim"
)

const chainID = 1337

// testChain is go-ethereum's simulated chain with SluiceToken deployed and
// a block mined every 20ms.
type testChain struct {
	backend *simulated.Backend
	token   common.Address
	payee   *ecdsa.PrivateKey
	payer   *chain.Payer
}

func newTestChain(t *testing.T, users ...*ecdsa.PrivateKey) *testChain {
	t.Helper()
	minter, _ := crypto.GenerateKey()
	payee, _ := crypto.GenerateKey()
	eth := new(big.Int).Mul(big.NewInt(100), big.NewInt(1e18))
	alloc := types.GenesisAlloc{crypto.PubkeyToAddress(minter.PublicKey): {Balance: eth}, crypto.PubkeyToAddress(payee.PublicKey): {Balance: eth}}
	for _, u := range users {
		alloc[crypto.PubkeyToAddress(u.PublicKey)] = types.Account{Balance: eth}
	}
	b := simulated.NewBackend(alloc, simulated.WithBlockGasLimit(30_000_000))
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	token, _, err := contracts.DeployToken(ctx, b.Client(), minter, big.NewInt(chainID), "Sluice Test Token", "SLT")
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	b.Commit()
	for _, u := range users {
		if _, err := contracts.Mint(ctx, b.Client(), minter, big.NewInt(chainID), token, crypto.PubkeyToAddress(u.PublicKey), big.NewInt(1e12)); err != nil {
			t.Fatalf("mint: %v", err)
		}
		b.Commit()
	}
	var mu sync.Mutex
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // the miner
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				mu.Lock()
				b.Commit()
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	payer := chain.NewPayer(chain.ChainConfig{ChainID: chainID, Confirmations: 1, PayeeKey: payee,
		Tokens: []chain.Token{{Address: token, Symbol: "SLT"}}, PollInterval: 10 * time.Millisecond}, b.Client())
	return &testChain{backend: b, token: token, payee: payee, payer: payer}
}

func (c *testChain) balance(t *testing.T, a common.Address) *big.Int {
	t.Helper()
	data, _ := contracts.TokenABI().Pack("balanceOf", a)
	out, err := c.backend.Client().CallContract(context.Background(), ethereum.CallMsg{To: &c.token, Data: data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return new(big.Int).SetBytes(out)
}

// TestPaidUpload runs an uploader on a priced built-in type: it approves
// the quoted amount on the chain, the node pulls it, farmers take the
// pieces and the file comes back.
func TestPaidUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("an 8s simulation")
	}
	t.Parallel()
	user, _ := crypto.GenerateKey()
	c := newTestChain(t, user)
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{
		Engine: actors.Config{
			Terms: sluice.Terms{Interval: 500 * time.Millisecond, Challenges: 256},
			Uploads: actors.UploadConfig{Redundancy: 2, ChunkSize: 64 << 10, Rate: big.NewRat(1, 1000),
				Payments: payments.New(c.payer),
				Accepted: []microservice.PaymentOption{{ChainID: "1337", AcceptedTokens: []microservice.Token{{Title: "SLT", Value: c.token.Hex()}}}}},
		},
		HTTP: sluicehttp.Config{RequestTimeout: 5 * time.Second},
	})
	sc := sim.Scenario{
		Name:            "paid",
		Duration:        sim.Duration(8 * time.Second),
		IntervalHint:    sim.Duration(500 * time.Millisecond),
		RequestTimeout:  sim.Duration(5 * time.Second),
		UploadChunkSize: 64 << 10,
		Farmers:         []sim.FarmerGroup{{Kind: sim.Honest, Count: 4, Size: 128 << 10}},
		Uploaders:       []sim.UploaderGroup{{Count: 1, Uploads: 1, Sizes: []sim.Size{50 << 10}}},
	}
	payee := crypto.PubkeyToAddress(c.payee.PublicKey)
	before := c.balance(t, payee)
	rep, err := sim.Run(context.Background(), sc, sim.Options{Node: n.URL, Chain: c.backend.Client(), PayKeys: []*ecdsa.PrivateKey{user}})
	if err != nil {
		t.Fatal(err)
	}
	if u := rep.Uploads; u.Done != 1 || u.Paid != 1 {
		for _, r := range rep.UploadList {
			t.Logf("upload %s: %s at status %d %s", r.QuoteID, r.Outcome, r.Status, r.Error)
		}
		t.Fatalf("uploads %+v, want one paid upload done", u)
	}
	// 50 KiB for an hour at 1/1000 token unit per byte-second.
	want := big.NewInt(50 << 10 * 3600 / 1000)
	if got := new(big.Int).Sub(c.balance(t, payee), before); got.Cmp(want) != 0 {
		t.Errorf("payee received %s, want %s", got, want)
	}
	if !rep.LedgerOK {
		t.Errorf("ledger: %v", rep.Ledger.Differences)
	}
}
