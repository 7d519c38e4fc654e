package actors

import (
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
