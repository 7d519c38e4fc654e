package http_test

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// standInArweave is a stand-in for oceanprotocol/uploader_arweave (which
// needs Bundlr and a live chain). It speaks that service's HTTP protocol
// (reference section 5.1): it quotes, takes uploads as ipfs:// URIs that
// it downloads from the node's private /ipfs/ route (its IPFS gateway),
// and reports status and links.
type standInArweave struct {
	gateway string
	mu      sync.Mutex
	quotes  map[string]int    // status
	got     map[string][]byte // downloaded bytes by CID
}

func (s *standInArweave) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == "POST" && r.URL.Path == "/getQuote":
		var q struct{ Type string }
		json.NewDecoder(r.Body).Decode(&q)
		if q.Type != "arweave" {
			w.WriteHeader(400)
			io.WriteString(w, `{"message":"Invalid type."}`)
			return
		}
		id := fmt.Sprintf("%032x", len(s.quotes)+1)
		s.quotes[id] = 1
		fmt.Fprintf(w, `{"quoteId":%q,"chainId":80001,"tokenAddress":"0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889","tokenAmount":"123456789012345678901","approveAddress":"0x5F8396D1BfDa5259Ee89196F892E4401BF3B596d"}`, id)
	case r.Method == "POST" && r.URL.Path == "/upload/":
		var b struct {
			QuoteID string `json:"quoteId"`
			Files   []struct {
				URI string `json:"ipfs_uri"`
			} `json:"files"`
		}
		json.NewDecoder(r.Body).Decode(&b)
		if s.quotes[b.QuoteID] != 1 || len(b.Files) == 0 {
			w.WriteHeader(400)
			io.WriteString(w, `{"message":"Quote is being processed."}`)
			return
		}
		for _, f := range b.Files {
			cid := strings.TrimPrefix(f.URI, "ipfs://")
			res, err := http.Get(s.gateway + "/ipfs/" + cid)
			if err != nil || res.StatusCode != 200 {
				s.quotes[b.QuoteID] = 403
				return
			}
			s.got[cid], _ = io.ReadAll(res.Body)
			res.Body.Close()
		}
		s.quotes[b.QuoteID] = 400
	case r.URL.Path == "/getStatus":
		st, ok := s.quotes[r.URL.Query().Get("quoteId")]
		if !ok {
			w.WriteHeader(404)
			io.WriteString(w, `{"message":"Quote not found."}`)
			return
		}
		fmt.Fprintf(w, `{"status":%d}`, st)
	case r.URL.Path == "/getLink":
		io.WriteString(w, `[{"type":"arweave","transactionHash":"xg8aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa43"}]`)
	case r.URL.Path == "/getHistory":
		// The node forwards history of this type here (reference 3.7).
		rows := []map[string]any{}
		for id, st := range s.quotes {
			rows = append(rows, map[string]any{"type": "arweave", "quoteId": id, "userAddress": r.URL.Query().Get("userAddress"), "status": st})
		}
		json.NewEncoder(w).Encode(map[string]any{"type": "arweave", "maxPages": 1, "data": rows})
	default:
		w.WriteHeader(404)
	}
}

type ethUser struct {
	key   *ecdsa.PrivateKey
	addr  string
	nonce int64
}

func newEthUser() *ethUser {
	k, _ := crypto.GenerateKey()
	return &ethUser{key: k, addr: crypto.PubkeyToAddress(k.PublicKey).Hex(), nonce: time.Now().Unix() - 100}
}

func (u *ethUser) signAt(quoteID, nonce string) string {
	s, _ := crypto.Sign(accounts.TextHash([]byte(sluice.SignedMessage(quoteID, nonce))), u.key)
	s[64] += 27
	return "0x" + hex.EncodeToString(s)
}

func (u *ethUser) next(quoteID string) (string, string) {
	u.nonce++
	n := strconv.FormatInt(u.nonce, 10)
	return n, u.signAt(quoteID, n)
}

func uploadTo(t *testing.T, base, quoteID, nonce, sig string, files ...[]byte) reply {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i, f := range files {
		fw, _ := mw.CreateFormFile(fmt.Sprintf("file%d", i+1), fmt.Sprintf("f%d.txt", i+1))
		fw.Write(f)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/upload?%s", base, url.Values{"quoteId": {quoteID}, "nonce": {nonce}, "signature": {sig}}.Encode()), &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := reply{code: res.StatusCode}
	r.raw, _ = io.ReadAll(res.Body)
	json.Unmarshal(r.raw, &r.body) // an object for errors, a JSON string on success
	if r.code == 200 && string(r.raw) != "\"File upload succeeded.\"\n" {
		t.Fatalf("upload succeeded with body %q", r.raw)
	}
	return r
}

// doAny is do for replies that are JSON of any shape.
func doAny(t *testing.T, method, url string, body any) (int, json.RawMessage) {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	return rawDo(t, method, url, "", b)
}

func TestUploaderAPI(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		registrar, _ := crypto.GenerateKey()
		n := nodetest.Start(t, s.Open(t), nodetest.Options{RegisterSigners: []common.Address{crypto.PubkeyToAddress(registrar.PublicKey)}})
		arweave := &standInArweave{gateway: n.Private, quotes: map[string]int{}, got: map[string][]byte{}}
		ms := httptest.NewServer(arweave)
		defer ms.Close()
		regSig, _ := crypto.Sign(accounts.TextHash([]byte(ms.URL+"/")), registrar)
		regSig[64] += 27
		code, raw := doAny(t, "POST", n.Private+"/register", map[string]any{"type": "arweave", "description": "File storage on Arweave",
			"url": ms.URL + "/", "signature": "0x" + hex.EncodeToString(regSig),
			"payment": []any{map[string]any{"chainId": 80001, "acceptedTokens": []any{map[string]string{"WMATIC": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}}}}})
		if code != 201 || string(raw) != "\"Desired storage created.\"\n" {
			t.Fatalf("register: %d %s", code, raw)
		}
		code, raw = doAny(t, "GET", n.URL+"/", nil)
		if code != 200 || !strings.Contains(string(raw), `"type":"arweave"`) || !strings.Contains(string(raw), `"type":"sluice"`) || strings.Contains(string(raw), ms.URL) {
			t.Fatalf("storage info: %d %s", code, raw)
		}

		u := newEthUser()
		quote := func(body map[string]any) reply { return do(t, "POST", n.URL+"/getQuote", body) }
		qbody := map[string]any{"type": "arweave", "files": []any{map[string]int{"length": 5}, map[string]int{"length": 7}},
			"duration": 4353545453, "payment": map[string]any{"chainId": "80001", "tokenAddress": "0x9c3C9283D3e44854697Cd22D3Faa240Cfb032889"}, "userAddress": u.addr}
		q := quote(qbody)
		if q.code != 201 || q.str("tokenAmount") != "123456789012345678901" || q.body["chainId"] != "80001" || q.str("approveAddress") == "" {
			t.Fatalf("getQuote (proxied): %d %s", q.code, q.raw)
		}
		id := q.str("quoteId")

		for name, c := range map[string]struct {
			body any
			code int
			msg  string
		}{
			"unknown type":    {map[string]any{"type": "nope", "files": []any{map[string]int{"length": 5}}, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr}, 400, "Chosen storage type does not exist."},
			"missing type":    {map[string]any{"files": []any{}}, 400, "Invalid input data: type is missing."},
			"negative length": {map[string]any{"type": "sluice", "files": []any{map[string]int{"length": -1}}, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr}, 400, ""},
			"absurd length":   {map[string]any{"type": "sluice", "files": []any{map[string]any{"length": 1e30}}, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr}, 400, ""},
			"no files":        {map[string]any{"type": "sluice", "files": []any{}, "payment": map[string]any{"chainId": 1}, "userAddress": u.addr}, 400, "Invalid input data: files is empty."},
			"bad user":        {map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 1}}, "payment": map[string]any{"chainId": 1}, "userAddress": "bob"}, 400, ""},
			"no chain":        {map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 1}}, "userAddress": u.addr}, 400, "Invalid input data: payment.chainId is missing."},
			"not JSON":        {"type=sluice", 400, ""},
		} {
			r := do(t, "POST", n.URL+"/getQuote", c.body)
			if r.code != c.code || r.str("error") == "" || (c.msg != "" && r.str("error") != c.msg) {
				t.Fatalf("getQuote %s: %d %s, want %d %q", name, r.code, r.raw, c.code, c.msg)
			}
		}

		// Upload with its signature checks.
		nonce, sig := u.next(id)
		other := newEthUser()
		for name, c := range map[string]struct {
			id, nonce, sig string
			code           int
		}{
			"missing params":  {id, "", "", 400},
			"unknown quote":   {"feedfeedfeedfeedfeedfeedfeedfeed", nonce, sig, 404},
			"bad signature":   {id, nonce, "0x1234", 400},
			"signer mismatch": {id, nonce, other.signAt(id, nonce), 400},
			"future nonce":    {id, strconv.FormatInt(time.Now().Unix()+600, 10), u.signAt(id, strconv.FormatInt(time.Now().Unix()+600, 10)), 400},
			"fractional":      {id, nonce + ".5", u.signAt(id, nonce+".5"), 400},
		} {
			if r := uploadTo(t, n.URL, c.id, c.nonce, c.sig, []byte("hello"), []byte("world!!")); r.code != c.code || r.str("error") == "" {
				t.Fatalf("upload %s: %d %s, want %d", name, r.code, r.raw, c.code)
			}
		}
		if r := uploadTo(t, n.URL, id, nonce, sig, []byte("hello"), []byte("world!!")); r.code != 200 {
			t.Fatalf("upload: %d %s", r.code, r.raw)
		}
		if r := uploadTo(t, n.URL, id, nonce, sig, []byte("hello")); r.code != 409 && r.code != 400 {
			t.Fatalf("replayed upload: %d %s, want a 4xx", r.code, r.raw)
		}
		// The microservice pulled the files from the private listener.
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := do(t, "GET", n.URL+"/getStatus?quoteId="+id, nil)
			if st.body["status"] == 400.0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never reached 400: %s", st.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
		arweave.mu.Lock()
		if len(arweave.got) != 2 {
			t.Fatalf("the microservice downloaded %d files, want 2", len(arweave.got))
		}
		arweave.mu.Unlock()
		wantUploaderError(t, do(t, "GET", n.URL+"/getStatus?quoteId=nope", nil), 404, "Quote does not exist.")
		nonce, sig = u.next(id)
		code, raw = doAny(t, "GET", n.URL+"/getLink?"+url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil)
		if code != 200 || !strings.Contains(string(raw), "transactionHash") {
			t.Fatalf("getLink: %d %s", code, raw)
		}
		// The same nonce again for another message is accepted once; the
		// same message again is a replay.
		q2 := quote(qbody)
		id2 := q2.str("quoteId")
		if r := uploadTo(t, n.URL, id2, nonce, u.signAt(id2, nonce), []byte("hello"), []byte("world!!")); r.code != 200 {
			t.Fatalf("equal but unused nonce: %d %s", r.code, r.raw)
		}
		code, _ = doAny(t, "GET", n.URL+"/getLink?"+url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil)
		if code < 400 || code > 499 {
			t.Fatalf("replayed getLink: %d, want a 4xx", code)
		}

		// More bytes than quoted: status 402, nothing stored.
		q3 := quote(map[string]any{"type": "sluice", "files": []any{map[string]int{"length": 4}}, "duration": 60,
			"payment": map[string]any{"chainId": 1}, "userAddress": u.addr})
		id3 := q3.str("quoteId")
		nonce, sig = u.next(id3)
		if r := uploadTo(t, n.URL, id3, nonce, sig, []byte("more than four")); r.code != 400 {
			t.Fatalf("oversized upload: %d %s", r.code, r.raw)
		}
		if st := do(t, "GET", n.URL+"/getStatus?quoteId="+id3, nil); st.body["status"] != 402.0 {
			t.Fatalf("status after an oversized upload: %s, want 402", st.raw)
		}

		// History: newest first, paged, filtered by type.
		nonce, sig = u.next("")
		h := do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig}, "page": {"1"}, "pageSize": {"2"}}.Encode(), nil)
		rows, _ := h.body["data"].([]any)
		if h.code != 200 || h.str("type") != "all" || h.body["maxPages"] != 2.0 || len(rows) != 2 || rows[0].(map[string]any)["quoteId"] != id3 {
			t.Fatalf("history: %d %s", h.code, h.raw)
		}
		nonce, sig = u.next("")
		h = do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig}, "storage": {"arweave"}}.Encode(), nil)
		if rows, _ := h.body["data"].([]any); h.str("type") != "arweave" || len(rows) != 2 {
			t.Fatalf("history of arweave: %s", h.raw)
		}
		nonce, sig = u.next("")
		wantUploaderError(t, do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {other.addr}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil), 400, "")
		for _, page := range []string{"0", "-1", "x", "9223372036854775807", "2147483648"} {
			nonce, sig = u.next("")
			wantUploaderError(t, do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig}, "page": {page}}.Encode(), nil),
				400, "Invalid page: want a whole number from 1 to 2147483647.")
		}
	})
}

func wantUploaderError(t *testing.T, r reply, code int, msg string) {
	t.Helper()
	if r.code != code || r.str("error") == "" || (msg != "" && r.str("error") != msg) {
		t.Fatalf("got %d %s, want %d {error: %q}", r.code, r.raw, code, msg)
	}
}
