package chain

import (
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
)

// ethTestSign signs message with EIP-191 personal_sign and returns the
// signer's address and the signature as raw R‖S‖V with V 0/1.
func ethTestSign(t testing.TB, message string) (address string, sig []byte) {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sig, err = crypto.Sign(accounts.TextHash([]byte(message)), key)
	if err != nil {
		t.Fatal(err)
	}
	return crypto.PubkeyToAddress(key.PublicKey).Hex(), sig
}

// ethTestHex writes sig in hex with the given prefix, V shifted by vOffset.
func ethTestHex(sig []byte, prefix string, vOffset byte) string {
	b := append([]byte(nil), sig...)
	b[64] += vOffset
	return prefix + hex.EncodeToString(b)
}

// ethTestTwin returns the malleable twin of a R‖S‖V signature: s
// replaced by n−s and V flipped. It recovers the same signer.
func ethTestTwin(sig []byte) []byte {
	n := crypto.S256().Params().N
	s := new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:64]))
	twin := append([]byte(nil), sig...)
	s.FillBytes(twin[32:64])
	twin[64] ^= 1
	return twin
}

func TestVerifyPersonal(t *testing.T) {
	const msg = "I own this address."
	addr, sig := ethTestSign(t, msg)
	twin := ethTestTwin(sig)
	otherAddr, otherSig := ethTestSign(t, msg)
	tampered := append([]byte(nil), sig...)
	tampered[5] ^= 1
	vTwo := append([]byte(nil), sig...)
	vTwo[64] = 2

	tests := []struct {
		name, address, message, signature string
		want                              error
	}{
		{"V 27/28 with 0x", addr, msg, ethTestHex(sig, "0x", 27), nil},
		{"V 27/28 without 0x", addr, msg, ethTestHex(sig, "", 27), nil},
		{"V 0/1 with 0x", addr, msg, ethTestHex(sig, "0x", 0), nil},
		{"V 0/1 without 0x", addr, msg, ethTestHex(sig, "", 0), nil},
		{"0X prefix", addr, msg, ethTestHex(sig, "0X", 27), nil},
		{"lowercase address", strings.ToLower(addr), msg, ethTestHex(sig, "0x", 27), nil},
		{"uppercase hex", addr, msg, "0x" + strings.ToUpper(ethTestHex(sig, "", 27)), nil},

		{"wrong signer", addr, msg, ethTestHex(otherSig, "0x", 27), ErrSignatureValue},
		{"other address", otherAddr, msg, ethTestHex(sig, "0x", 27), ErrSignatureValue},
		{"tampered message", addr, msg + "!", ethTestHex(sig, "0x", 27), ErrSignatureValue},
		{"tampered signature", addr, msg, ethTestHex(tampered, "0x", 27), ErrSignatureValue},
		{"V 29", addr, msg, ethTestHex(vTwo, "0x", 27), ErrSignatureValue},
		{"V 2", addr, msg, ethTestHex(vTwo, "0x", 0), ErrSignatureValue},
		{"V 26", addr, msg, ethTestHex(sig, "0x", 26-sig[64]), ErrSignatureValue},
		{"V 255", addr, msg, ethTestHex(sig, "0x", 255-sig[64]), ErrSignatureValue},
		{"all-zero signature", addr, msg, "0x" + strings.Repeat("00", 65), ErrSignatureValue},
		{"high S, V 27/28", addr, msg, ethTestHex(twin, "0x", 27), ErrSignatureMalleable},
		{"high S, V 0/1", addr, msg, ethTestHex(twin, "", 0), ErrSignatureMalleable},
		{"s = n", addr, msg, ethTestHex(append(append(append([]byte(nil), sig[:32]...), crypto.S256().Params().N.Bytes()...), sig[64]), "0x", 27), ErrSignatureValue},
		{"r = 0", addr, msg, ethTestHex(append(make([]byte, 32), sig[32:]...), "0x", 27), ErrSignatureValue},
		{"bad address", "0x1234", msg, ethTestHex(sig, "0x", 27), ErrSignatureValue},

		{"64 bytes", addr, msg, ethTestHex(sig, "0x", 27)[:130], ErrSignatureLength},
		{"66 bytes", addr, msg, ethTestHex(sig, "0x", 27) + "00", ErrSignatureLength},
		{"empty", addr, msg, "", ErrSignatureLength},
		{"0x only", addr, msg, "0x", ErrSignatureLength},
		{"non-hex", addr, msg, "0x" + strings.Repeat("zz", 65), ErrSignatureFormat},
		{"odd length", addr, msg, ethTestHex(sig, "0x", 27)[:131], ErrSignatureFormat},
		{"base64", addr, msg, btcVectorSignature, ErrSignatureFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifyPersonal(tc.address, []byte(tc.message), tc.signature); got != tc.want {
				t.Errorf("VerifyPersonal(%q, %q, %q) = %v, want %v", tc.address, tc.message, tc.signature, got, tc.want)
			}
		})
	}
}

func TestRecoverPersonal(t *testing.T) {
	const msg = "hello"
	addr, sig := ethTestSign(t, msg)
	for _, s := range []string{ethTestHex(sig, "0x", 27), ethTestHex(sig, "", 0)} {
		got, err := RecoverPersonal([]byte(msg), s)
		if err != nil {
			t.Fatalf("RecoverPersonal(%q): got error %v, want nil", s, err)
		}
		if got.Hex() != addr {
			t.Errorf("RecoverPersonal(%q): got %s, want %s", s, got.Hex(), addr)
		}
	}
}

// TestHighSRefused takes the reference's vectors (low S, as every wallet
// signs) and their malleable twins: go-ethereum's SigToPub recovers the
// same signer from a twin, so only the explicit check refuses it.
func TestHighSRefused(t *testing.T) {
	for _, v := range []struct{ quote, nonce, sig string }{
		{"892241ee78e1ff18ca514a475a55f8fb", "1700000000",
			"0xc7b8c6be48558b6c2d21a2a7d4e0749053f8bb3cdaa451583021e7bd494395f02c480322f6f43d3ed9afb70d8f4d8956f077131b90bbb3f69e13c2f16bcc907b1c"},
		{"", "1700000001",
			"0x0d71ec6ba3d017a8a4f08894674b196ddb0ba0178fd3c8f8b745879e0c5e39831f033ba73623ecdff7de978807ea67901e5ccccbf5740a9c86791da5f04060da1b"},
	} {
		msg := []byte(sluice.SignedMessage(v.quote, v.nonce))
		raw, err := hex.DecodeString(v.sig[2:])
		if err != nil {
			t.Fatal(err)
		}
		raw[64] -= 27
		twin := ethTestTwin(raw)
		pub, err := crypto.SigToPub(accounts.TextHash(msg), twin)
		want, _ := RecoverPersonal(msg, v.sig)
		if err != nil || crypto.PubkeyToAddress(*pub) != want {
			t.Fatalf("quote %q: the twin does not recover the signer with SigToPub; the test is wrong", v.quote)
		}
		for _, offset := range []byte{0, 27} {
			if got, err := RecoverPersonal(msg, ethTestHex(twin, "0x", offset)); err != ErrSignatureMalleable {
				t.Errorf("quote %q, twin with V offset %d: got %s, %v, want %v", v.quote, offset, got.Hex(), err, ErrSignatureMalleable)
			}
		}
		if _, err := DecodeSignature(ethTestHex(twin, "0x", 27)); err != ErrSignatureMalleable {
			t.Errorf("DecodeSignature of the twin: got %v, want %v", err, ErrSignatureMalleable)
		}
	}
	// Fresh signatures from go-ethereum are always low S, so never refused.
	for range 64 {
		addr, sig := ethTestSign(t, "low")
		if err := VerifyPersonal(addr, []byte("low"), ethTestHex(sig, "0x", 27)); err != nil {
			t.Fatalf("a go-ethereum signature: got %v, want nil", err)
		}
	}
}

func TestDecodeSignature(t *testing.T) {
	_, sig := ethTestSign(t, "x")
	for _, offset := range []byte{0, 27} {
		got, err := DecodeSignature(ethTestHex(sig, "0x", offset))
		if err != nil {
			t.Fatalf("V offset %d: got error %v, want nil", offset, err)
		}
		if got[64] != sig[64] {
			t.Errorf("V offset %d: got V %d, want %d", offset, got[64], sig[64])
		}
	}
}

func TestSignatureErrors(t *testing.T) {
	for _, err := range []*sluice.Error{ErrSignatureFormat, ErrSignatureLength, ErrSignatureValue, ErrSignatureMalleable} {
		if got := sluice.Kind(err); got != sluice.ErrInvalid {
			t.Errorf("%q: got kind %v, want %v", err.Message, got, sluice.ErrInvalid)
		}
	}
}

func TestVerifyAddressSignature(t *testing.T) {
	const msg = "dispatch"
	ethAddr, ethSig := ethTestSign(t, msg)
	ethHex := ethTestHex(ethSig, "0x", 27)
	btcAddr, btcSig := btcTestSign(t, btcTestKey(t), msg, true)

	tests := []struct {
		name      string
		address   string
		kind      sluice.AddressKind
		message   string
		signature string
		want      error
	}{
		{"ethereum", ethAddr, sluice.AddressEthereum, msg, ethHex, nil},
		{"base58", btcAddr, sluice.AddressBase58, msg, btcSig, nil},
		{"base58 vector", btcVectorAddress, sluice.AddressBase58, btcVectorMessage, btcVectorSignature, nil},
		{"ethereum, tampered message", ethAddr, sluice.AddressEthereum, msg + "!", ethHex, ErrSignatureValue},
		{"ethereum, high S", ethAddr, sluice.AddressEthereum, msg, ethTestHex(ethTestTwin(ethSig), "0x", 27), ErrSignatureMalleable},
		{"base58, tampered message", btcAddr, sluice.AddressBase58, msg + "!", btcSig, ErrSignatureValue},
		{"ethereum kind, bitcoin signature", ethAddr, sluice.AddressEthereum, msg, btcSig, ErrSignatureFormat},
		{"base58 kind, ethereum signature", btcAddr, sluice.AddressBase58, msg, ethHex, ErrBitcoinSignatureLength},
		{"base58 kind, ethereum address", ethAddr, sluice.AddressBase58, msg, btcSig, sluice.ErrInvalidAddress},
		{"unknown kind 0", ethAddr, 0, msg, ethHex, sluice.ErrInvalidAddress},
		{"unknown kind 99", btcAddr, 99, msg, btcSig, sluice.ErrInvalidAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifyAddressSignature(tc.address, tc.kind, tc.message, tc.signature); got != tc.want {
				t.Errorf("VerifyAddressSignature(%q, %d, ...) = %v, want %v", tc.address, tc.kind, got, tc.want)
			}
		})
	}
}
