package http

import (
	"bytes"
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
