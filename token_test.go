package sluice_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// A token record keeps last_due only once it has one, and a record written
// before the field existed loads with none.
func TestTokenLastDueJSON(t *testing.T) {
	tok := sluice.NewToken(sluice.RawToken{1}, "0x0000000000000000000000000000000000000001", "192.0.2.1", time.Unix(0, 0).UTC())
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "last_due") {
		t.Fatalf("a token without a due time: got %s, want no last_due", b)
	}
	var old sluice.Token
	if err := json.Unmarshal(b, &old); err != nil || !old.LastDue.IsZero() {
		t.Fatalf("a record without last_due: got %v, %v, want it to load with none", old.LastDue, err)
	}
	tok.LastDue = time.Date(2015, 3, 18, 5, 12, 33, 123456789, time.UTC)
	b, _ = json.Marshal(tok)
	var back sluice.Token
	if err := json.Unmarshal(b, &back); err != nil || !back.LastDue.Equal(tok.LastDue) {
		t.Fatalf("last_due round trip: got %v, %v, want %v", back.LastDue, err, tok.LastDue)
	}
}

// A bucket refilling at a vanishing rate asks the client to wait a day at
// most, never a negative (overflowed) time.
func TestBucketWaitIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b sluice.Bucket
	if ok, _ := b.Allow(now, 1e-300, 1); !ok {
		t.Fatal("the first request must pass")
	}
	ok, wait := b.Allow(now, 1e-300, 1)
	if ok || wait <= 0 || wait > 24*time.Hour {
		t.Fatalf("second request: allowed %v, wait %v; want refused with 0 < wait <= 24h", ok, wait)
	}
}
