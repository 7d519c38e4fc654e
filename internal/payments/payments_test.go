package payments_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/chain"
	"github.com/sluicehq/sluice/contracts"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/internal/payments"
	"github.com/sluicehq/sluice/microservice"
)

const chainID = 1337

// world is go-ethereum's simulated chain with the real SluiceToken
// deployed, blocks mined every few milliseconds by a goroutine, and a
// payee and users funded with ether.
type world struct {
	t      *testing.T
	sim    *simulated.Backend
	mu     sync.Mutex // the simulated backend is not safe for concurrent Commit
	minter *ecdsa.PrivateKey
	payee  *ecdsa.PrivateKey
	token  common.Address
	payer  *chain.Payer
}

func newWorld(t *testing.T, users ...*ecdsa.PrivateKey) *world {
	w := &world{t: t}
	w.minter, _ = crypto.GenerateKey()
	w.payee, _ = crypto.GenerateKey()
	eth := new(big.Int).Mul(big.NewInt(100), big.NewInt(1e18))
	alloc := types.GenesisAlloc{crypto.PubkeyToAddress(w.minter.PublicKey): {Balance: eth}, crypto.PubkeyToAddress(w.payee.PublicKey): {Balance: eth}}
	for _, u := range users {
		alloc[crypto.PubkeyToAddress(u.PublicKey)] = types.Account{Balance: eth}
	}
	w.sim = simulated.NewBackend(alloc, simulated.WithBlockGasLimit(30_000_000))
	t.Cleanup(func() { w.sim.Close() })
	addr, _, err := contracts.DeployToken(t.Context(), w.sim.Client(), w.minter, big.NewInt(chainID), "Sluice Test Token", "SLT")
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	w.token = addr
	w.sim.Commit()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the chain's miner
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				w.mu.Lock()
				w.sim.Commit()
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	w.payer = chain.NewPayer(chain.ChainConfig{ChainID: chainID, Confirmations: 1, PayeeKey: w.payee,
		Tokens: []chain.Token{{Address: addr, Symbol: "SLT"}}, PollInterval: 10 * time.Millisecond}, w.sim.Client())
	return w
}

// mined waits (bounded) for a transaction's receipt.
func (w *world) mined(tx *types.Transaction, err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, err := w.sim.Client().TransactionReceipt(context.Background(), tx.Hash()); err == nil && r.Status == 1 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("transaction %s not mined", tx.Hash())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *world) fund(u *ecdsa.PrivateKey, balance, allowance int64) {
	ctx := context.Background()
	w.mined(contracts.Mint(ctx, w.sim.Client(), w.minter, big.NewInt(chainID), w.token, crypto.PubkeyToAddress(u.PublicKey), big.NewInt(balance)))
	w.mined(contracts.Approve(ctx, w.sim.Client(), u, big.NewInt(chainID), w.token, crypto.PubkeyToAddress(w.payee.PublicKey), big.NewInt(allowance)))
}

func (w *world) balance(a common.Address) int64 {
	data, _ := contracts.TokenABI().Pack("balanceOf", a)
	out, err := w.sim.Client().CallContract(context.Background(), ethereumCall(w.token, data), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return new(big.Int).SetBytes(out).Int64()
}

func startNode(t *testing.T, w *world, store actors.Store) *nodetest.Node {
	return nodetest.Start(t, store, nodetest.Options{Engine: actors.Config{
		Terms: sluice.Terms{Interval: time.Minute},
		Uploads: actors.UploadConfig{Rate: big.NewRat(1, 1), Payments: payments.New(w.payer),
			Accepted: []microservice.PaymentOption{{ChainID: "1337", AcceptedTokens: []microservice.Token{{Title: "SLT", Value: w.token.Hex()}}}}},
	}})
}

type user struct {
	key   *ecdsa.PrivateKey
	addr  string
	nonce int64
}

func newUser() *user {
	k, _ := crypto.GenerateKey()
	return &user{key: k, addr: crypto.PubkeyToAddress(k.PublicKey).Hex(), nonce: time.Now().Unix() - 100}
}

func (u *user) sign(quoteID string) (string, string) {
	u.nonce++
	n := strconv.FormatInt(u.nonce, 10)
	s, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(quoteID, n))), u.key)
	s[64] += 27
	return n, "0x" + hex.EncodeToString(s)
}

// quoteAndUpload asks for a 10-byte, 10-second quote (price 100) and
// uploads; it returns the quote id.
func quoteAndUpload(t *testing.T, n *nodetest.Node, w *world, u *user) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 10}}, "duration": 10,
		"payment": map[string]any{"chainId": "1337", "tokenAddress": w.token.Hex()}, "userAddress": u.addr})
	res, err := http.Post(n.URL+"/getQuote", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var q struct{ QuoteID, TokenAmount, ApproveAddress string }
	json.NewDecoder(res.Body).Decode(&q)
	res.Body.Close()
	if res.StatusCode != 201 || q.TokenAmount != "100" || q.ApproveAddress != crypto.PubkeyToAddress(w.payee.PublicKey).Hex() {
		t.Fatalf("getQuote: %d %+v", res.StatusCode, q)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file1", "ten.txt")
	fw.Write([]byte("0123456789"))
	mw.Close()
	nonce, sig := u.sign(q.QuoteID)
	res, err = http.Post(n.URL+"/upload?"+url.Values{"quoteId": {q.QuoteID}, "nonce": {nonce}, "signature": {sig}}.Encode(), mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("upload: %d %s", res.StatusCode, msg)
	}
	return q.QuoteID
}

// waitStatus waits (bounded) until the quote's status is one of want.
func waitStatus(t *testing.T, n *nodetest.Node, id string, want ...int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(n.URL + "/getStatus?quoteId=" + id)
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Status int }
		json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		for _, s := range want {
			if st.Status == s {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("quote %s: status %d, want one of %v", id, st.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPaidUploads(t *testing.T) {
	rich, stingy, poor := newUser(), newUser(), newUser()
	w := newWorld(t, rich.key, stingy.key, poor.key)
	w.fund(rich.key, 1000, 1000)
	w.fund(stingy.key, 1000, 99) // allowance below the price
	w.fund(poor.key, 50, 1000)   // balance below the price
	n := startNode(t, w, nodetest.Stores(t)[0].Open(t))
	payee := crypto.PubkeyToAddress(w.payee.PublicKey)

	id := quoteAndUpload(t, n, w, rich)
	// Paid, then waiting for farmers (status 300: nobody holds it yet).
	waitStatus(t, n, id, sluice.StatusUploading)
	if got := w.balance(crypto.PubkeyToAddress(rich.key.PublicKey)); got != 900 {
		t.Fatalf("payer balance %d, want 900", got)
	}
	if got := w.balance(payee); got != 100 {
		t.Fatalf("payee balance %d, want 100", got)
	}
	if q, _ := n.Engine.Quote(context.Background(), id); q.TxHash == "" {
		t.Fatal("no transaction hash recorded on the quote")
	}

	for _, u := range []*user{stingy, poor} {
		id := quoteAndUpload(t, n, w, u)
		waitStatus(t, n, id, sluice.StatusLowAllowance)
	}
	if got := w.balance(payee); got != 100 {
		t.Fatalf("failed payments moved tokens: payee has %d, want 100", got)
	}

	// Quotes on a chain or token the node does not take.
	for name, pay := range map[string]map[string]any{
		"unknown chain": {"chainId": "5", "tokenAddress": w.token.Hex()},
		"unknown token": {"chainId": "1337", "tokenAddress": "0x0000000000000000000000000000000000000001"},
	} {
		b, _ := json.Marshal(map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 10}}, "duration": 10,
			"payment": pay, "userAddress": rich.addr})
		res, err := http.Post(n.URL+"/getQuote", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		if res.StatusCode != 400 || e.Error == "" {
			t.Fatalf("%s: %d %q, want a 400", name, res.StatusCode, e.Error)
		}
	}
}

// TestRestartDuringPayment: the node signed and committed the transfer
// but stopped before sending it. The restarted quote sends that same
// transaction and the user pays once, even across a second restart.
func TestRestartDuringPayment(t *testing.T) {
	u := newUser()
	w := newWorld(t, u.key)
	w.fund(u.key, 1000, 1000)
	var store actors.Store
	for _, s := range nodetest.Stores(t)[:1] {
		store = s.Open(t)
	}
	raw, hash, err := w.payer.Prepare(context.Background(), w.token, crypto.PubkeyToAddress(u.key.PublicKey), big.NewInt(100))
	if err != nil {
		t.Fatal(err)
	}
	q := sluice.Quote{ID: "0123456789abcdef0123456789abcdef", Type: "sluice", Lengths: []int64{10}, Duration: 10,
		ChainID: json.RawMessage(`"1337"`), Token: w.token.Hex(), Amount: "100", Payee: crypto.PubkeyToAddress(w.payee.PublicKey).Hex(),
		Owner: u.addr, Created: time.Now(), Expires: time.Now().Add(time.Hour), Status: sluice.StatusPaymentStart,
		TxHash: hash.Hex(), RawTx: raw, Version: 3,
		Files: []sluice.StoredFile{{Name: "ten.txt", CID: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", Length: 10}}}
	state, _ := json.Marshal(q)
	if err := store.Write(context.Background(), []sluice.Record{{Kind: sluice.KindQuote, ID: q.ID, Owner: u.addr, Version: 3, Live: true, State: state}}); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, w, store)
	// Paid, then cutting the file fails (it is not in this node's blob
	// store): what is checked here is the payment.
	waitStatus(t, n, q.ID, sluice.StatusInternalError)
	if got := w.balance(crypto.PubkeyToAddress(u.key.PublicKey)); got != 900 {
		t.Fatalf("after the restart the user has %d, want 900 (paid once)", got)
	}
}

func ethereumCall(to common.Address, data []byte) ethereum.CallMsg {
	return ethereum.CallMsg{To: &to, Data: data}
}
