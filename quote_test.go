package sluice_test

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestSignedMessageVectors(t *testing.T) {
	// Reference section 1.4.
	for _, v := range []struct{ quote, nonce, want string }{
		{"892241ee78e1ff18ca514a475a55f8fb", "1700000000", "0x9bdb0c1744cd34152f160a822eb6565fd830eceafee87f126c41cb9c657e982e"},
		{"", "1700000001", "0xb03c94ef74953171960deca89cf076c24a2c0cc168e84477add3bd75360ee8e1"},
		{"123565", "1768214571", "0x0ee382b39a39e05500d99233cdca83cd9959be4ff557ce7f3f29c9ce99d3b5de"},
	} {
		if got := sluice.SignedMessage(v.quote, v.nonce); got != v.want {
			t.Fatalf("SignedMessage(%q, %q): got %s, want %s", v.quote, v.nonce, got, v.want)
		}
	}
}

func TestNonces(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var n sluice.Nonces
	steps := []struct {
		nonce, msg string
		want       error
	}{
		{"1699999990", "a", nil},
		{"1699999990", "b", nil},                   // equal nonce, new message: the client's second call
		{"1699999990", "a", sluice.ErrNonceReused}, // equal nonce, same message: a replay
		{"1699999989", "c", sluice.ErrNonceOld},
		{"1700000000", "a", nil},
		{"1700000301", "d", sluice.ErrNonceFuture},
		{"1700000300", "d", nil},
		{"1700000300.5", "e", sluice.ErrNonceFormat},
		{"17e8", "e", sluice.ErrNonceFormat},
		{"-5", "e", sluice.ErrNonceFormat},
		{"0017000003001", "e", sluice.ErrNonceFormat},
		{"", "e", sluice.ErrNonceFormat},
	}
	for i, s := range steps {
		err := n.Accept(s.nonce, s.msg, now)
		if !errors.Is(err, s.want) && !(err == nil && s.want == nil) {
			t.Fatalf("step %d (%s): got %v, want %v", i, s.nonce, err, s.want)
		}
	}
}

func TestStoragePrice(t *testing.T) {
	for _, c := range []struct {
		bytes, dur int64
		rate       string
		want       int64
	}{
		{1000, 10, "1", 10000},
		{1000, 10, "1/3", 3334}, // rounded up
		{0, 10, "5", 0},
		{1, 1, "1/1000000", 1},
	} {
		r, _ := new(big.Rat).SetString(c.rate)
		if got := sluice.StoragePrice(c.bytes, c.dur, r); got.Int64() != c.want {
			t.Fatalf("price(%d, %d, %s): got %s, want %d", c.bytes, c.dur, c.rate, got, c.want)
		}
	}
}
