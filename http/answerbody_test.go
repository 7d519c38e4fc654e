package http

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var answerBodies = []string{
	`{"proof":{"leaves":[{"index":1,"data":"AA==","path":["x"]}]}}`,
	" \n{ \"proof\" :\t{\"leaves\":[]} }\r\n",
	`{"proof":null}`,
	`{"proof":[1,-2.5e+3,0.0,true,false,null,"a\"\\\/\b\f\n\r\t\u00e9"]}`,
	`{"proof":{"a":{"b":{"c":[[[]]]}}}}`,
	`{"proof":{}}`,
	`{"proof":{},"x":1}`,      // another member: encoding/json's way
	`{"Proof":{}}`,            // case-folded key: encoding/json's way
	`{"proof":{},"proof":[]}`, // repeated: encoding/json's way
	`{"proof":01}`, `{"proof":1.}`, `{"proof":-}`, `{"proof":1e}`, `{"proof":.5}`,
	`{"proof":"\x"}`, `{"proof":"\u12"}`, "{\"proof\":\"\x01\"}", "{\"proof\":\"\xc3\xa9\"}",
	`{"proof":{"a" 1}}`, `{"proof":{"a":1,}}`, `{"proof":[1,]}`, `{"proof":[1 2]}`,
	`{"proof":nul}`, `{"proof":{}}x`, `{"proof":{}} {}`, `{"proof":{}`, `{"proof"}`, `{}`, ``, `[]`, `null`,
}

// On every body it takes, the one-pass reader finds what encoding/json
// finds; it never takes a body encoding/json refuses.
func TestProofMemberAgreesWithEncodingJSON(t *testing.T) {
	for i, body := range answerBodies {
		checkProofMember(t, []byte(body))
		if _, ok := proofMember([]byte(body)); ok != (i < 6) {
			t.Errorf("%q: one-pass reader took it: %v, want %v", body, ok, i < 6)
		}
	}
}

func FuzzProofMember(f *testing.F) {
	for _, b := range answerBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkProofMember(t, body) })
}

func checkProofMember(t *testing.T, body []byte) {
	t.Helper()
	fast, ok := proofMember(body)
	var req answerRequest
	err := decodeFrom(bytes.NewReader(body), &req)
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("%q: one-pass reader took it, encoding/json: %v", body, err)
	}
	if !bytes.Equal(fast, req.Proof) {
		t.Fatalf("%q: one-pass reader found %q, encoding/json %q", body, fast, req.Proof)
	}
}

var batchBodies = []string{
	`{"proofs":[{"file_hash":"ab","proof":{"leaves":[]}},{"proof":[1,2],"file_hash":null}]}`,
	" {\n \"proofs\" : [ ] }\t",
	`{"proofs":[{}]}`,
	`{"proofs":[{"file_hash":"a\"b","proof":"\u00e9"}, {"proof":null}]}`,
	`{"proofs":[{"file_hash":1e3,"proof":{"a":[{"b":[]}]}}]}`,
	`{"proofs":[{"file_hash":"x","proof":{},"other":1}]}`, // another member: encoding/json's way
	`{"proofs":[{"file_hash":"x","file_hash":"y"}]}`,      // repeated: encoding/json's way
	`{"proofs":[{"File_Hash":"x"}]}`,                      // case-folded key
	`{"proofs":[null]}`, `{"proofs":null}`, `{"proofs":[1]}`, `{"proofs":{}}`, `{"Proofs":[]}`,
	`{"proofs":[],"x":1}`, `{"proofs":[{"proof":{}}],}`, `{"proofs":[{"proof":{}},]}`,
	`{"proofs":[{"proof":{}}`, `{"proofs":[{"proof":01}]}`, `{"proofs":[{"proof"}]}`,
	`{"proofs":[{"proof":{}} {"proof":{}}]}`, `{"proofs":[]}x`, "{\"proofs\":[{\"proof\":\"\xc3\xa9\"}]}",
	``, `[]`, `{}`,
}

// The batch reader, like the single one, agrees with encoding/json on
// every body it takes and never takes one encoding/json refuses.
func TestProofsMembersAgreesWithEncodingJSON(t *testing.T) {
	for i, body := range batchBodies {
		checkProofsMembers(t, []byte(body))
		if _, ok := proofsMembers([]byte(body)); ok != (i < 5) {
			t.Errorf("%q: one-pass reader took it: %v, want %v", body, ok, i < 5)
		}
	}
}

func FuzzProofsMembers(f *testing.F) {
	for _, b := range batchBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkProofsMembers(t, body) })
}

func checkProofsMembers(t *testing.T, body []byte) {
	t.Helper()
	fast, ok := proofsMembers(body)
	var req answersRequest
	err := decodeFrom(bytes.NewReader(body), &req)
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("%q: one-pass reader took it, encoding/json: %v", body, err)
	}
	if len(fast) != len(req.Proofs) {
		t.Fatalf("%q: one-pass reader found %d items, encoding/json %d", body, len(fast), len(req.Proofs))
	}
	for k := range fast {
		if !bytes.Equal(fast[k].FileHash, req.Proofs[k].FileHash) || !bytes.Equal(fast[k].Proof, req.Proofs[k].Proof) ||
			(fast[k].FileHash == nil) != (req.Proofs[k].FileHash == nil) || (fast[k].Proof == nil) != (req.Proofs[k].Proof == nil) {
			t.Fatalf("%q: item %d: one-pass reader found %q, encoding/json %q", body, k, fast[k], req.Proofs[k])
		}
	}
}

// parseHashJSON's shortcut for a plain 64-character string gives what
// the general path gives.
func TestParseHashJSON(t *testing.T) {
	const hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
	for _, c := range []struct {
		raw string
		ok  bool
	}{
		{`"` + hex + `"`, true},
		{`"` + hex[:63] + `\u0066"`, true},
		{`"` + hex[:63] + `g"`, false},
		{`"` + hex[:63] + `"`, false},
		{hex, false},
		{`null`, false},
		{`"` + hex + `0"`, false},
	} {
		h, ok := parseHashJSON([]byte(c.raw))
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.raw, ok, c.ok)
		}
		if ok && h.String() != strings.ToLower(hex) {
			t.Errorf("%s: got %s", c.raw, h)
		}
	}
}

// A body's buffer is sized from Content-Length, but never past presize
// before the bytes arrive: the header alone must not reserve megabytes.
func TestSizeHint(t *testing.T) {
	for _, c := range []struct {
		length int64
		enc    string
		want   int
	}{
		{6560, "", 6560 + 512},
		{-1, "", 0},
		{0, "", 0},
		{16 << 20, "", presize + 512},
		{17 << 20, "", 0}, // over the limit: refused while reading
		{6560, "gzip", 0},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.ContentLength = c.length
		if c.enc != "" {
			r.Header.Set("Content-Encoding", c.enc)
		}
		if got := sizeHint(r, 16<<20); got != c.want {
			t.Errorf("Content-Length %d %q: hint %d, want %d", c.length, c.enc, got, c.want)
		}
	}
}

// writeOK writes exactly what writeJSON writes for the same value.
func TestWriteOKIsWriteJSON(t *testing.T) {
	a, b := httptest.NewRecorder(), httptest.NewRecorder()
	writeJSON(a, http.StatusOK, map[string]string{"status": "ok"})
	writeOK(b)
	if a.Code != b.Code || a.Body.String() != b.Body.String() || a.Header().Get("Content-Type") != b.Header().Get("Content-Type") {
		t.Errorf("writeOK: %d %q %q; writeJSON: %d %q %q", b.Code, b.Body, b.Header().Get("Content-Type"), a.Code, a.Body, a.Header().Get("Content-Type"))
	}
}
