package actors

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// TestDecodeQuoteFiles: a quote record written before uploads were
// acknowledged ahead of their CIDs (files with a cid, no pending id)
// decodes as sealed; a new one keeps its pending ids and is not sealed
// until every file has its CID.
func TestDecodeQuoteFiles(t *testing.T) {
	old := sluice.Record{Kind: sluice.KindQuote, ID: "q", State: []byte(`{"id":"q","type":"sluice","status":101,
		"files":[{"name":"a.txt","cid":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","length":10,"content_type":null}],"version":3}`)}
	q, err := decodeQuote(old)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Files) != 1 || q.Files[0].Pending != "" || !q.Sealed() {
		t.Fatalf("old record: got files %+v, sealed %v, want one sealed file", q.Files, q.Sealed())
	}

	q.Files = []sluice.StoredFile{{Name: "a", Pending: "0123456789abcdef0123456789abcdef", Length: 1},
		{Name: "b", CID: q.Files[0].CID, Length: 10}}
	back, err := decodeQuote(quoteRecord(&q))
	if err != nil {
		t.Fatal(err)
	}
	if back.Files[0].Pending != q.Files[0].Pending || back.Files[0].CID != "" || back.Sealed() {
		t.Fatalf("new record: got files %+v, sealed %v, want the first pending and not sealed", back.Files, back.Sealed())
	}
	back.Files[0].CID = q.Files[1].CID
	if !back.Sealed() {
		t.Fatalf("all files with a CID: got not sealed, want sealed")
	}
}

// TestDecodeQuoteHandedOff: a proxied quote's record says whether its
// files were handed to the microservice; a record from before it did is
// read as handed off once its files are sealed (the node hands them off
// right after sealing them). Built-in quotes' records do not carry it.
func TestDecodeQuoteHandedOff(t *testing.T) {
	const sealed = `"files":[{"name":"a","cid":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","length":5}]`
	const pending = `"files":[{"name":"a","cid":"","pending":"0123456789abcdef0123456789abcdef","length":5}]`
	for _, c := range []struct {
		name, state string
		want        bool
	}{
		{"old, relayed 100", `{"id":"q","type":"arweave","backend_id":"q","status":100,` + sealed + `}`, true},
		{"old, files not sealed", `{"id":"q","type":"arweave","backend_id":"q","status":101,` + pending + `}`, false},
		{"old, waiting", `{"id":"q","type":"arweave","backend_id":"q","status":1}`, false},
		{"new, not handed off", `{"id":"q","type":"arweave","backend_id":"q","status":101,"handed_off":false,` + sealed + `}`, false},
		{"new, handed off", `{"id":"q","type":"arweave","backend_id":"q","status":1,"handed_off":true,` + sealed + `}`, true},
		{"built-in", `{"id":"q","type":"sluice","status":300,` + sealed + `}`, false},
	} {
		q, err := decodeQuote(sluice.Record{Kind: sluice.KindQuote, ID: "q", State: []byte(c.state)})
		if err != nil {
			t.Fatal(err)
		}
		if q.HandedOff != c.want {
			t.Fatalf("%s: got handed off %v, want %v", c.name, q.HandedOff, c.want)
		}
		back, _ := decodeQuote(quoteRecord(&q))
		if back.HandedOff != c.want {
			t.Fatalf("%s, written again: got handed off %v, want %v", c.name, back.HandedOff, c.want)
		}
		if rec := quoteRecord(&q); strings.Contains(string(rec.State), "handed_off") != (q.BackendID != "") {
			t.Fatalf("%s: record %s, want handed_off exactly for proxied quotes", c.name, rec.State)
		}
	}
}
