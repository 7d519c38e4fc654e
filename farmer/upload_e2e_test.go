package farmer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/farmer"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// user is an uploader client signing requests as @oceanprotocol/uploader
// does: EIP-191 over "0x" + sha256hex(quoteId + nonce).
type user struct {
	t     *testing.T
	key   *ecdsa.PrivateKey
	addr  string
	nonce int64
}

func newUser(t *testing.T) *user {
	key, _ := crypto.GenerateKey()
	return &user{t: t, key: key, addr: crypto.PubkeyToAddress(key.PublicKey).Hex(), nonce: time.Now().Unix()}
}

func (u *user) sign(quoteID string) (nonce, sig string) {
	u.nonce++
	nonce = strconv.FormatInt(u.nonce, 10)
	s, err := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(quoteID, nonce))), u.key)
	if err != nil {
		u.t.Fatal(err)
	}
	s[64] += 27
	return nonce, "0x" + hex.EncodeToString(s)
}

// TestUploadStoredOnFarmers takes an upload on the built-in storage type
// end to end: quote, upload, two real farmers take its chunks and prove
// them, status 400, link, and the file served back byte for byte.
func TestUploadStoredOnFarmers(t *testing.T) {
	for _, s := range nodetest.Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			n := nodetest.Start(t, s.Open(t), nodetest.Options{Engine: actors.Config{
				Terms:   sluice.Terms{Interval: time.Second, Challenges: 256},
				Uploads: actors.UploadConfig{Redundancy: 2, ChunkSize: 64 << 10},
			}})
			u := newUser(t)
			file := make([]byte, 200<<10+123) // four chunks, the last one short
			rand.Read(file)
			quote := uploadFile(t, n, u, file)
			runFarmers(t, n, 2, 512<<10)
			waitStored(t, n, quote)
			checkServedBack(t, n, u, quote, file)
		})
	}
}

// TestSameBytesUploadedTwice: two users upload the same file before any
// farmer has its pieces. The pieces are shared, and both quotes reach 400
// once farmers prove them (the second used to stay at 300 for good: only
// the quote a piece was cut from was told it was held).
func TestSameBytesUploadedTwice(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{Engine: actors.Config{
		Terms:   sluice.Terms{Interval: time.Second, Challenges: 256},
		Uploads: actors.UploadConfig{Redundancy: 2, ChunkSize: 64 << 10},
	}})
	file := make([]byte, 100<<10+9) // two chunks
	rand.Read(file)
	u1, u2 := newUser(t), newUser(t)
	q1 := uploadFile(t, n, u1, file)
	q2 := uploadFile(t, n, u2, file)
	runFarmers(t, n, 2, 512<<10)
	waitStored(t, n, q1)
	waitStored(t, n, q2)
	checkServedBack(t, n, u2, q2, file)
}

// TestUploadDisplacesPrototypes uploads to farmers already full of
// prototype contracts that would last 256 intervals: the node ends some of
// them early (answered, not lost) so that the pieces find room, and the
// upload completes within a few intervals.
func TestUploadDisplacesPrototypes(t *testing.T) {
	for _, s := range nodetest.Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			n := nodetest.Start(t, s.Open(t), nodetest.Options{Engine: actors.Config{
				Terms:      sluice.Terms{Interval: time.Second, Challenges: 256},
				ChunkSizes: []int64{32 << 10},
				Uploads:    actors.UploadConfig{Redundancy: 2, ChunkSize: 64 << 10},
			}})
			const size = 256 << 10 // eight prototype contracts each
			runFarmers(t, n, 2, size)
			waitFor(t, "both farmers full of prototype contracts", func() bool {
				return testutil.ToFloat64(n.Metrics.LiveContracts) == 2*size/(32<<10)
			})

			u := newUser(t)
			file := make([]byte, 100<<10+7) // two chunks
			rand.Read(file)
			quote := uploadFile(t, n, u, file)
			waitStored(t, n, quote)
			checkServedBack(t, n, u, quote, file)
			if got := testutil.ToFloat64(n.Metrics.Displaced); got < 4 {
				t.Fatalf("%v prototype contracts displaced, want at least 4 (two 64 KiB pieces, twice, in 32 KiB contracts)", got)
			}
			if got := testutil.ToFloat64(n.Metrics.ContractsClosed.WithLabelValues("expired")); got != 0 {
				t.Fatalf("%v contracts expired: displaced contracts must end, not expire", got)
			}
		})
	}
}

// uploadFile quotes file on the free built-in type and uploads it.
func uploadFile(t *testing.T, n *nodetest.Node, u *user, file []byte) string {
	t.Helper()
	var q struct {
		QuoteID, TokenAmount, ApproveAddress, TokenAddress string
		ChainID                                            any
	}
	code := nodetest.Call(t, "POST", n.URL+"/getQuote", map[string]any{
		"type": "sluice", "files": []any{map[string]int{"length": len(file)}}, "duration": 3600,
		"payment":     map[string]any{"chainId": "1337", "tokenAddress": "0x0000000000000000000000000000000000000000"},
		"userAddress": u.addr}, &q)
	if code != 201 || q.QuoteID == "" || q.TokenAmount != "0" || q.ChainID != "1337" {
		t.Fatalf("getQuote: %d %+v", code, q)
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file1", "data.bin")
	fw.Write(file)
	mw.Close()
	nonce, sig := u.sign(q.QuoteID)
	res, err := http.Post(fmt.Sprintf("%s/upload?quoteId=%s&nonce=%s&signature=%s", n.URL, q.QuoteID, nonce, sig), mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(bytes.TrimSpace(msg)) != `"File upload succeeded."` {
		t.Fatalf("upload: %d %s", res.StatusCode, msg)
	}
	return q.QuoteID
}

// runFarmers runs count real farmers of size bytes until the test ends.
func runFarmers(t *testing.T, n *nodetest.Node, count int, size int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, count)
	for i := range count {
		go func() {
			done <- farmer.Run(ctx, farmer.Config{Node: n.URL, Address: fmt.Sprintf("0x%040x", i+1),
				Size: size, Dir: t.TempDir(), BatchWindow: 20 * time.Millisecond})
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range count {
			<-done
		}
	})
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStored waits for the quote's status to go from 300 to 400.
func waitStored(t *testing.T, n *nodetest.Node, quote string) {
	t.Helper()
	var st struct{ Status int }
	waitFor(t, "status 400", func() bool {
		nodetest.Call(t, "GET", n.URL+"/getStatus?quoteId="+quote, nil, &st)
		if st.Status != sluice.StatusDone && st.Status != sluice.StatusPaymentPulled && st.Status != sluice.StatusUploading {
			t.Fatalf("status %d, want 300 then 400", st.Status)
		}
		return st.Status == sluice.StatusDone
	})
}

// checkServedBack gets the quote's link and the file it names.
func checkServedBack(t *testing.T, n *nodetest.Node, u *user, quote string, file []byte) {
	t.Helper()
	nonce, sig := u.sign(quote)
	var links []struct{ Type, CID string }
	if code := nodetest.Call(t, "GET", n.URL+"/getLink?"+url.Values{"quoteId": {quote}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil, &links); code != 200 || len(links) != 1 || links[0].Type != "sluice" {
		t.Fatalf("getLink: %d %+v", code, links)
	}
	res, err := http.Get(n.URL + "/ipfs/" + links[0].CID)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(back, file) {
		t.Fatalf("served back %d bytes, not the %d uploaded", len(back), len(file))
	}
}
