package chain

import "testing"

// BenchmarkVerifyEthereum measures one EIP-191 verification per op.
func BenchmarkVerifyEthereum(b *testing.B) {
	const msg = "I own this address."
	addr, sig := ethTestSign(b, msg)
	signature := ethTestHex(sig, "0x", 27)
	message := []byte(msg)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := VerifyPersonal(addr, message, signature); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkVerifyBitcoin measures one Bitcoin signed-message verification
// per op, with the header's recovery id right (the usual case: one key
// recovered).
func BenchmarkVerifyBitcoin(b *testing.B) {
	const msg = "I own this address."
	addr, signature := btcTestSign(b, btcTestKey(b), msg, true)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := VerifyBitcoinMessage(addr, msg, signature); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}
