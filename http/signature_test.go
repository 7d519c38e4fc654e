package http_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"

	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
)

func sign(t *testing.T, msg string) (address, sig string) {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := crypto.Sign(accounts.TextHash([]byte(msg)), key)
	if err != nil {
		t.Fatal(err)
	}
	s[64] += 27 // wallets send V as 27/28
	return crypto.PubkeyToAddress(key.PublicKey).Hex(), "0x" + hex.EncodeToString(s)
}

const (
	btcAddress = "19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV"
	btcMessage = "test message"
	btcSig     = "HyzVUenXXo4pa+kgm1vS8PNJM83eIXFC5r0q86FGbqFcdla6rcw72/ciXiEPfjli3ENfwWuESHhv6K9esI0dl5I="
)

func TestSignedNewToken(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{HTTP: sluicehttp.Config{RequireSignature: true}})
	address, sig := sign(t, "I farm for Sluice")
	other, _ := sign(t, "I farm for Sluice")
	body := func(msg, sig string) map[string]string { return map[string]string{"message": msg, "signature": sig} }

	r := do(t, "POST", n.API+"/new/"+address, body("I farm for Sluice", sig))
	if r.code != 200 || len(r.str("token")) != 32 {
		t.Fatalf("signed /new: %d %s", r.code, r.raw)
	}
	r = do(t, "POST", n.API+"/new/"+btcAddress, body(btcMessage, btcSig))
	if r.code != 200 || len(r.str("token")) != 32 {
		t.Fatalf("signed /new for a Bitcoin address: %d %s", r.code, r.raw)
	}
	wantError(t, do(t, "POST", n.API+"/new/"+btcAddress, body(btcMessage, btcSig)), 400,
		"This signed message was already used to get a token; sign a new message.")
	for _, tc := range []struct {
		name, method, address string
		body                  any
		msg                   string
	}{
		{"GET when signatures are required", "GET", address, nil,
			"New token requests must include posted signature proving ownership of farming address"},
		{"no body", "POST", address, "", `Posted data must be JSON encoded object including "signature" and "message"`},
		{"missing signature", "POST", address, map[string]string{"message": "m"}, `Posted data must be JSON encoded object including "signature" and "message"`},
		{"wrong address", "POST", other, body("I farm for Sluice", sig), "Signature invalid."},
		{"tampered message", "POST", address, body("I farm for Sluice!", sig), "Signature invalid."},
		{"wrong length", "POST", address, body("I farm for Sluice", sig[:len(sig)-2]), ""},
		{"not hex", "POST", address, body("I farm for Sluice", "0x"+strings.Repeat("zz", 65)), ""},
		{"message too long", "POST", address, body(strings.Repeat("m", 1025), sig), "Please restrict your message to less than 1024 bytes."},
		{"invalid address", "POST", "0x1234", body("I farm for Sluice", sig), ""},
		{"replayed", "POST", address, body("I farm for Sluice", sig), "This signed message was already used to get a token; sign a new message."},
		// Bitcoin-style addresses: the reference's verified vector.
		{"bitcoin: wrong address", "POST", "1HSMekTxSDkwgNSnhDqNkd4RwCu4Gn69r9", body(btcMessage, btcSig), "Signature invalid."},
		{"bitcoin: tampered message", "POST", btcAddress, body(btcMessage+"!", btcSig), "Signature invalid."},
		{"bitcoin: wrong length", "POST", btcAddress, body(btcMessage, btcSig[:87]), ""},
		{"bitcoin: bad base64", "POST", btcAddress, body(btcMessage, strings.Repeat("*", 88)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, do(t, tc.method, n.API+"/new/"+tc.address, tc.body), 400, tc.msg)
		})
	}
}
