package http_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/actors"
	"github.com/sluicehq/sluice/internal/nodetest"
	"github.com/sluicehq/sluice/proof"
)

const addr = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"

// reply is a decoded JSON reply.
type reply struct {
	code int
	body map[string]any
	raw  []byte
}

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

func do(t *testing.T, method, url string, body any, header ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := reply{code: res.StatusCode, raw: raw}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: reply is not a JSON object: %q", method, url, raw)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q, want application/json", method, url, ct)
	}
	return r
}

// wantError checks a reply is in the API's error format with a 4xx code.
func wantError(t *testing.T, r reply, code int, msg string) {
	t.Helper()
	if r.code != code || r.str("status") != "error" || (msg != "" && r.str("message") != msg) {
		t.Fatalf("got %d %s, want %d {status: error, message: %q}", r.code, r.raw, code, msg)
	}
}

// chunk is a contract as /chunk hands it out.
type chunk struct {
	FileHash  string          `json:"file_hash"`
	Size      int64           `json:"size"`
	Seed      string          `json:"seed"`
	Challenge proof.Challenge `json:"challenge"`
	Tag       proof.Tag       `json:"tag"`
	Due       float64         `json:"due"`
}

// farmerT is the test's Go farmer: it regenerates chunk bytes from their
// seed, checks them against the tag and proves.
type farmerT struct {
	t     *testing.T
	api   string
	token string
}

func newFarmer(t *testing.T, n *nodetest.Node) *farmerT {
	r := do(t, "GET", n.API+"/new/"+addr, nil)
	if r.code != 200 || len(r.str("token")) != 32 || r.str("type") != "merkle-segment" {
		t.Fatalf("/new: %d %s", r.code, r.raw)
	}
	hb, _ := r.body["heartbeat"].(map[string]any)
	if hb["scheme"] != "merkle-segment" || hb["leaf_size"] != 1024.0 || hb["leaves_per_challenge"] != 4.0 {
		t.Fatalf("/new heartbeat: %v", hb)
	}
	return &farmerT{t: t, api: n.API, token: r.str("token")}
}

func (f *farmerT) chunks(size int64) []chunk {
	f.t.Helper()
	res, err := http.Get(fmt.Sprintf("%s/chunk/%s/%d", f.api, f.token, size))
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Chunks []chunk }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		f.t.Fatalf("/chunk: %d %v", res.StatusCode, err)
	}
	for _, c := range out.Chunks {
		data := proof.NewSeeded(c.Seed, c.Size)
		b, _ := io.ReadAll(data.NewReader())
		if got := sluice.HashBytes(b).String(); got != c.FileHash {
			f.t.Fatalf("chunk bytes hash to %s, want %s", got, c.FileHash)
		}
		tag, _ := proof.Encode(bytes.NewReader(b), c.Size, c.Tag.LeafSize)
		if tag != c.Tag {
			f.t.Fatalf("chunk tag: got %+v, want %+v", tag, c.Tag)
		}
	}
	return out.Chunks
}

func (f *farmerT) prove(c chunk, ch proof.Challenge) json.RawMessage {
	f.t.Helper()
	data := proof.NewSeeded(c.Seed, c.Size)
	tree, err := proof.BuildTree(data, c.Size, c.Tag.LeafSize)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := tree.Prove(data, ch)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	return b
}

func (f *farmerT) answer(hash string, p json.RawMessage) reply {
	return do(f.t, "POST", f.api+"/answer/"+f.token+"/"+hash, map[string]any{"proof": p})
}

func eachStore(t *testing.T, fn func(t *testing.T, s nodetest.Store)) {
	for _, s := range nodetest.Stores(t) {
		t.Run(s.Name, func(t *testing.T) { fn(t, s) })
	}
}

func TestFarmerFlow(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n := nodetest.Start(t, s.Open(t), nodetest.Options{})
		f := newFarmer(t, n)
		cs := f.chunks(3 * 32768)
		if len(cs) != 3 {
			t.Fatalf("got %d chunks, want 3", len(cs))
		}
		c := cs[0]
		if c.Due <= 0 || c.Due > 60 {
			t.Fatalf("due %v, want within the 60s interval", c.Due)
		}

		r := do(t, "GET", f.api+"/challenge/"+f.token+"/"+c.FileHash, nil)
		if r.code != 200 || r.body["answered"] != false {
			t.Fatalf("challenge: %d %s", r.code, r.raw)
		}
		var ch struct{ Challenge proof.Challenge }
		json.Unmarshal(r.raw, &ch)

		// A proof of other leaves is invalid and changes nothing.
		wrong := ch.Challenge
		wrong.Indices = []uint32{0, 1, 2, 3}
		if wrong.Indices[0] == ch.Challenge.Indices[0] {
			wrong.Indices = []uint32{4, 5, 6, 7}
		}
		wantError(t, f.answer(c.FileHash, f.prove(c, wrong)), 400, sluice.MsgProofInvalid)
		wantError(t, f.answer(c.FileHash, json.RawMessage(`{"leaves":[{"index":"x"}]}`)), 400, sluice.MsgProofCorrupted)
		wantError(t, f.answer(c.FileHash, json.RawMessage(`"not a proof"`)), 400, sluice.MsgProofCorrupted)

		if r := f.answer(c.FileHash, f.prove(c, ch.Challenge)); r.code != 200 || r.str("status") != "ok" {
			t.Fatalf("answer: %d %s", r.code, r.raw)
		}
		wantError(t, f.answer(c.FileHash, f.prove(c, ch.Challenge)), 400, sluice.MsgAlreadyAnswered)
		wantError(t, f.answer(strings.Repeat("ab", 32), f.prove(c, ch.Challenge)), 404, sluice.MsgContractNotFound)
		wantError(t, do(t, "GET", f.api+"/challenge/"+f.token+"/"+strings.Repeat("ab", 32), nil), 404, sluice.MsgContractNotFound)

		// Batch calls: per-item results, in the order posted.
		hashes := []any{cs[1].FileHash, cs[2].FileHash, "nope", 17, c.FileHash}
		r = do(t, "POST", f.api+"/challenge/"+f.token, map[string]any{"hashes": hashes})
		items, _ := r.body["challenges"].([]any)
		if r.code != 200 || len(items) != 5 {
			t.Fatalf("batch challenge: %d %s", r.code, r.raw)
		}
		for i, want := range []string{"", "", sluice.MsgContractNotFound, sluice.MsgContractNotFound, ""} {
			it := items[i].(map[string]any)
			if it["file_hash"] != hashes[i] && !(i == 3 && it["file_hash"] == 17.0) {
				t.Fatalf("item %d file_hash %v, want %v", i, it["file_hash"], hashes[i])
			}
			if e, _ := it["error"].(string); e != want {
				t.Fatalf("item %d error %q, want %q", i, e, want)
			}
		}
		if items[4].(map[string]any)["answered"] != true {
			t.Fatalf("answered contract shows %v", items[4])
		}
		var batch []map[string]any
		for _, it := range items[:2] {
			var cc struct{ Challenge proof.Challenge }
			b, _ := json.Marshal(it)
			json.Unmarshal(b, &cc)
			k := 1
			if it.(map[string]any)["file_hash"] == cs[2].FileHash {
				k = 2
			}
			batch = append(batch, map[string]any{"file_hash": cs[k].FileHash, "proof": f.prove(cs[k], cc.Challenge)})
		}
		batch = append(batch, map[string]any{"file_hash": c.FileHash, "proof": f.prove(c, ch.Challenge)})
		batch = append(batch, map[string]any{"file_hash": "zz", "proof": f.prove(c, ch.Challenge)})
		r = do(t, "POST", f.api+"/answer/"+f.token, map[string]any{"proofs": batch},
			"Content-Encoding", "gzip") // the original farmer's label on a plain body
		report, _ := r.body["report"].([]any)
		if r.code != 200 || len(report) != 4 {
			t.Fatalf("batch answer: %d %s", r.code, r.raw)
		}
		for i, want := range []string{"ok", "ok", sluice.MsgAlreadyAnswered, sluice.MsgContractNotFound} {
			it := report[i].(map[string]any)
			if it["status"] != want && it["error"] != want {
				t.Fatalf("report %d: %v, want %q", i, it, want)
			}
		}

		// GET /challenge lists every live contract.
		r = do(t, "GET", f.api+"/challenge/"+f.token, nil)
		if items, _ := r.body["challenges"].([]any); len(items) != 3 {
			t.Fatalf("all challenges: %s", r.raw)
		}
		st, err := n.Engine.Stats(t.Context(), sluiceFarmerID(t, f.token))
		if err != nil || st.Heartbeats != 3 || st.Contracts != 3 {
			t.Fatalf("stats: %+v %v, want 3 heartbeats and 3 contracts", st, err)
		}

		// The old prefix serves the same API; /heartbeat reconnects.
		if r := do(t, "GET", n.URL+"/api/downstream/heartbeat/"+f.token, nil); r.code != 200 || r.str("token") != f.token {
			t.Fatalf("heartbeat: %d %s", r.code, r.raw)
		}
		if r := do(t, "DELETE", f.api+"/token/"+f.token, nil); r.code != 200 {
			t.Fatalf("delete: %d %s", r.code, r.raw)
		}
		wantError(t, do(t, "GET", f.api+"/heartbeat/"+f.token, nil), 400, sluice.MsgNonexistentToken)
	})
}

func sluiceFarmerID(t *testing.T, token string) string {
	raw, err := sluice.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	return raw.FarmerID()
}

func TestExpiredContract(t *testing.T) {
	eachStore(t, func(t *testing.T, s nodetest.Store) {
		n := nodetest.Start(t, s.Open(t), nodetest.Options{Engine: actors.Config{
			Terms: sluice.Terms{Interval: 300 * time.Millisecond, Challenges: 256},
		}})
		f := newFarmer(t, n)
		c := f.chunks(32768)[0]
		// Wait (bounded) for the contract's deadline to pass unanswered.
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := do(t, "GET", f.api+"/challenge/"+f.token+"/"+c.FileHash, nil)
			if r.code == 400 && r.str("message") == sluice.MsgContractExpired {
				break
			}
			if r.code != 200 || time.Now().After(deadline) {
				t.Fatalf("waiting for expiry: %d %s", r.code, r.raw)
			}
			time.Sleep(50 * time.Millisecond)
		}
		wantError(t, f.answer(c.FileHash, f.prove(c, c.Challenge)), 400, sluice.MsgContractExpired)
		r := do(t, "POST", f.api+"/challenge/"+f.token, map[string]any{"hashes": []string{c.FileHash}})
		if it := r.body["challenges"].([]any)[0].(map[string]any); it["error"] != sluice.MsgContractExpired {
			t.Fatalf("batch challenge after expiry: %s", r.raw)
		}
		// Expired contracts no longer count: GET /challenge lists none.
		if r := do(t, "GET", f.api+"/challenge/"+f.token, nil); len(r.body["challenges"].([]any)) != 0 {
			t.Fatalf("live challenges after expiry: %s", r.raw)
		}
	})
}

func TestBadInput(t *testing.T) {
	// A long interval: the contract must outlive the oversized bodies, which
	// take a while to send on a loaded machine.
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{Engine: actors.Config{
		Terms: sluice.Terms{Interval: time.Hour, Challenges: 256}}})
	f := newFarmer(t, n)
	c := f.chunks(32768)[0]
	tok := f.token
	api := n.API
	huge := `{"proofs":[` + strings.Repeat(`{"file_hash":"x","proof":{}},`, 700_000) + `{}]}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"hashes":[` + strings.Repeat(`"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",`, 1<<20) + `"a"]}`))
	zw.Close()
	leaf := func(index int, data string, path int) string {
		p := make([]string, path)
		for i := range p {
			p[i] = `"` + strings.Repeat("A", 43) + `="`
		}
		return fmt.Sprintf(`{"index":%d,"data":%q,"path":[%s]}`, index, data, strings.Join(p, ","))
	}
	i0, i1 := c.Challenge.Indices[0], c.Challenge.Indices[1]
	const badHash = "Invalid file hash: want 64 hex characters."
	cases := []struct {
		name, method, url string
		body              any
		header            []string
		code              int
		msg               string
	}{
		{"short token", "GET", api + "/chunk/abc", nil, nil, 400, sluice.MsgNonexistentToken},
		{"non-hex token", "GET", api + "/chunk/" + strings.Repeat("zz", 16), nil, nil, 400, sluice.MsgNonexistentToken},
		{"long token", "GET", api + "/heartbeat/" + tok + "00", nil, nil, 400, sluice.MsgNonexistentToken},
		{"unknown token", "GET", api + "/challenge/" + strings.Repeat("ab", 16), nil, nil, 400, sluice.MsgNonexistentToken},
		{"chunk size 0", "GET", api + "/chunk/" + tok + "/0", nil, nil, 400, ""},
		{"negative chunk size", "GET", api + "/chunk/" + tok + "/-5", nil, nil, 400, ""},
		{"absurd chunk size", "GET", api + "/chunk/" + tok + "/99999999999999999999999", nil, nil, 400, ""},
		{"non-numeric chunk size", "GET", api + "/chunk/" + tok + "/lots", nil, nil, 400, ""},
		{"bad file hash", "GET", api + "/challenge/" + tok + "/xyz", nil, nil, 400, badHash},
		{"bad file hash to answer", "POST", api + "/answer/" + tok + "/xyz", `{"proof":{}}`, nil, 400, badHash},
		{"bad file hash of data", "GET", api + "/chunk/" + tok + "/xyz/data", nil, nil, 400, badHash},
		// The token is looked up before the hash's form, as the original did.
		{"unknown token, bad file hash", "GET", api + "/challenge/" + strings.Repeat("ab", 16) + "/zz", nil, nil, 400, sluice.MsgNonexistentToken},
		{"unknown token, bad file hash to answer", "POST", api + "/answer/" + strings.Repeat("ab", 16) + "/zz", `{"proof":{}}`, nil, 400, sluice.MsgNonexistentToken},
		{"unknown token, bad file hash of data", "GET", api + "/chunk/" + strings.Repeat("ab", 16) + "/zz/data", nil, nil, 400, sluice.MsgNonexistentToken},
		{"non-JSON answer", "POST", api + "/answer/" + tok, "proofs please", nil, 400, ""},
		{"empty answer body", "POST", api + "/answer/" + tok, "", nil, 400, ""},
		{"answer with trailing data", "POST", api + "/answer/" + tok, `{"proofs":[]} {}`, nil, 400, ""},
		{"proofs not a list", "POST", api + "/answer/" + tok, `{"proofs":7}`, nil, 400, ""},
		{"non-JSON challenge list", "POST", api + "/challenge/" + tok, "<xml/>", nil, 400, ""},
		{"oversized body", "POST", api + "/answer/" + tok, huge, nil, 413, ""},
		{"gzip bomb", "POST", api + "/challenge/" + tok, gz.Bytes(), []string{"Content-Encoding", "gzip"}, 413, ""},
		{"single answer without proof", "POST", api + "/answer/" + tok + "/" + c.FileHash, `{}`, nil, 400, ""},
		{"duplicated index", "POST", api + "/answer/" + tok + "/" + c.FileHash,
			`{"proof":{"leaves":[` + leaf(int(i0), "AA==", 5) + `,` + leaf(int(i0), "AA==", 5) + `]}}`, nil, 400, sluice.MsgProofInvalid},
		{"missing indices", "POST", api + "/answer/" + tok + "/" + c.FileHash,
			`{"proof":{"leaves":[` + leaf(int(i0), "AA==", 5) + `]}}`, nil, 400, sluice.MsgProofInvalid},
		{"out-of-range index", "POST", api + "/answer/" + tok + "/" + c.FileHash,
			`{"proof":{"leaves":[` + leaf(int(i1), "AA==", 5) + `,` + leaf(1<<30, "AA==", 5) + `]}}`, nil, 400, sluice.MsgProofInvalid},
		{"negative index", "POST", api + "/answer/" + tok + "/" + c.FileHash,
			`{"proof":{"leaves":[` + leaf(-1, "AA==", 5) + `]}}`, nil, 400, sluice.MsgProofCorrupted},
		{"too-long path", "POST", api + "/answer/" + tok + "/" + c.FileHash,
			`{"proof":{"leaves":[` + leaf(int(i0), "AA==", 65) + `]}}`, nil, 400, sluice.MsgProofCorrupted},
		{"bad base64 leaf", "POST", api + "/answer/" + tok + "/" + c.FileHash,
			`{"proof":{"leaves":[{"index":0,"data":"%%%","path":[]}]}}`, nil, 400, sluice.MsgProofCorrupted},
		{"unknown route", "GET", api + "/nothing", nil, nil, 404, ""},
		{"wrong method", "PUT", api + "/answer/" + tok, "{}", nil, 405, ""},
		{"invalid address", "GET", api + "/new/not-an-address", nil, nil, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, do(t, tc.method, tc.url, tc.body, tc.header...), tc.code, tc.msg)
		})
	}
	// None of the above disturbed the contract.
	if r := f.answer(c.FileHash, f.prove(c, c.Challenge)); r.code != 200 {
		t.Fatalf("answer after bad input: %d %s", r.code, r.raw)
	}
}

func httpGet(url string) (*http.Response, error) {
	res, err := http.Get(url)
	if err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return res, err
}

// TestChallengesListInFileHashOrder: GET /challenge/{token} lists the
// live contracts in file hash order, the same on every call.
func TestChallengesListInFileHashOrder(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{})
	f := newFarmer(t, n)
	for held := 0; held < 12; {
		got := f.chunks(32768)
		if len(got) == 0 {
			t.Fatal("no more chunks")
		}
		held += len(got)
	}
	var first []string
	for call := 0; call < 3; call++ {
		r := do(t, "GET", f.api+"/challenge/"+f.token, nil)
		items, _ := r.body["challenges"].([]any)
		if r.code != 200 || len(items) < 12 {
			t.Fatalf("all challenges: %d %s", r.code, r.raw)
		}
		var hashes []string
		for _, it := range items {
			hashes = append(hashes, it.(map[string]any)["file_hash"].(string))
		}
		if !slices.IsSorted(hashes) {
			t.Fatalf("call %d: file hashes not in order: %v", call, hashes)
		}
		if first == nil {
			first = hashes
		} else if !slices.Equal(first, hashes) {
			t.Fatalf("call %d listed %v, the first %v", call, hashes, first)
		}
	}
}
