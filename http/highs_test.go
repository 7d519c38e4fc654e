package http_test

import (
	"net/url"
	"testing"

	"github.com/sluicehq/sluice/chain"
	sluicehttp "github.com/sluicehq/sluice/http"
	"github.com/sluicehq/sluice/internal/nodetest"
)

// TestHighSSignaturesRefused sends the malleable twin (s → n−s, V
// flipped) of a valid signature wherever an Ethereum signature is checked
// on the public listener: the uploader's signed routes and the farmer's
// signed /new. Each refuses it with 400 in its API's format, and the
// genuine signature still works afterwards (the twin used up nothing).
// The private listener's /register is in TestPrivateListenerErrors.
func TestHighSSignaturesRefused(t *testing.T) {
	n := nodetest.Start(t, nodetest.Stores(t)[0].Open(t), nodetest.Options{HTTP: sluicehttp.Config{RequireSignature: true}})
	malleable := chain.ErrSignatureMalleable.Message

	t.Run("uploader", func(t *testing.T) {
		u := newEthUser()
		data := []byte("hello")
		id := quoteFor(t, n.URL, u, len(data))

		nonce, sig := u.next("")
		r := do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {twinHex(t, sig)}}.Encode(), nil)
		wantUploaderError(t, r, 400, malleable)
		if r := do(t, "GET", n.URL+"/getHistory?"+url.Values{"userAddress": {u.addr}, "nonce": {nonce}, "signature": {sig}}.Encode(), nil); r.code != 200 {
			t.Fatalf("getHistory with the genuine signature: got %d %s, want 200", r.code, r.raw)
		}

		nonce, sig = u.next(id)
		wantUploaderError(t, uploadTo(t, n.URL, id, nonce, twinHex(t, sig), data), 400, malleable)
		if r := uploadTo(t, n.URL, id, nonce, sig, data); r.code != 200 {
			t.Fatalf("upload with the genuine signature: got %d %s, want 200", r.code, r.raw)
		}

		nonce, sig = u.next(id)
		r = do(t, "GET", n.URL+"/getLink?"+url.Values{"quoteId": {id}, "nonce": {nonce}, "signature": {twinHex(t, sig)}}.Encode(), nil)
		wantUploaderError(t, r, 400, malleable)
	})

	t.Run("farmer", func(t *testing.T) {
		const msg = "I farm for Sluice, low S only"
		address, sig := sign(t, msg)
		body := func(sig string) map[string]string { return map[string]string{"message": msg, "signature": sig} }
		wantError(t, do(t, "POST", n.API+"/new/"+address, body(twinHex(t, sig))), 400, malleable)
		if r := do(t, "POST", n.API+"/new/"+address, body(sig)); r.code != 200 || len(r.str("token")) != 32 {
			t.Fatalf("/new with the genuine signature: got %d %s, want 200 and a token", r.code, r.raw)
		}
	})
}
