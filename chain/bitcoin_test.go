package chain

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
)

// The vector from the original node's tests (reference §3.8).
const (
	btcVectorAddress   = "19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV"
	btcVectorMessage   = "test message"
	btcVectorSignature = "HyzVUenXXo4pa+kgm1vS8PNJM83eIXFC5r0q86FGbqFcdla6rcw72/ciXiEPfjli3ENfwWuESHhv6K9esI0dl5I="
)

// btcTestBase58Check encodes version‖payload in base58check, the inverse of
// sluice.Base58CheckDecode.
func btcTestBase58Check(version byte, payload []byte) string {
	const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	b := append([]byte{version}, payload...)
	h1 := sha256.Sum256(b)
	h2 := sha256.Sum256(h1[:])
	b = append(b, h2[:4]...)
	n := new(big.Int).SetBytes(b)
	radix, mod := big.NewInt(58), new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// btcTestHash computes signmessage's digest independently of
// bitcoinMessageHash (messages shorter than 65536 bytes).
func btcTestHash(message string) []byte {
	var size []byte
	if n := len(message); n < 253 {
		size = []byte{byte(n)}
	} else {
		size = []byte{0xfd, byte(n), byte(n >> 8)}
	}
	b := append([]byte("\x18Bitcoin Signed Message:\n"), size...)
	h1 := sha256.Sum256(append(b, message...))
	h2 := sha256.Sum256(h1[:])
	return h2[:]
}

// btcTestSign signs message as a Bitcoin wallet would, returning the
// base64 compact signature and the P2PKH address (version 0x00) of the
// compressed or uncompressed key.
func btcTestSign(t testing.TB, key *ecdsa.PrivateKey, message string, compressed bool) (address, signature string) {
	t.Helper()
	sig, err := crypto.Sign(btcTestHash(message), key) // R‖S‖V
	if err != nil {
		t.Fatal(err)
	}
	header := 27 + sig[64]
	pub := crypto.FromECDSAPub(&key.PublicKey)
	if compressed {
		header += 4
		pub = crypto.CompressPubkey(&key.PublicKey)
	}
	h := hash160(pub)
	compact := append([]byte{header}, sig[:64]...)
	return btcTestBase58Check(0x00, h[:]), base64.StdEncoding.EncodeToString(compact)
}

// btcTestKey returns a fresh private key.
func btcTestKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// btcTestEdit decodes a base64 signature, applies edit, and re-encodes it.
func btcTestEdit(t *testing.T, signature string, edit func(raw []byte)) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		t.Fatal(err)
	}
	edit(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

func TestVerifyBitcoinMessage(t *testing.T) {
	key, other := btcTestKey(t), btcTestKey(t)
	const msg = "I own this address. ✓"
	cAddr, cSig := btcTestSign(t, key, msg, true)
	uAddr, uSig := btcTestSign(t, key, msg, false)
	otherAddr, _ := btcTestSign(t, other, msg, true)
	long := strings.Repeat("long message ", 25) // 325 bytes: varint 0xfd 0x45 0x01
	longAddr, longSig := btcTestSign(t, key, long, true)
	exact := strings.Repeat("x", 253) // the first length that needs 0xfd
	exactAddr, exactSig := btcTestSign(t, key, exact, false)

	cPayload, err := sluice.Base58CheckDecode(cAddr)
	if err != nil {
		t.Fatal(err)
	}
	p2shLike := btcTestBase58Check(0x05, cPayload[1:])
	short := btcTestBase58Check(0x00, cPayload[1:20]) // valid base58check, 19-byte hash

	// highS negates s, which the same key satisfies under the other
	// recovery id: an old wallet's signature.
	highS := btcTestEdit(t, cSig, func(raw []byte) {
		n := new(big.Int).SetBytes(curveOrder[:])
		s := new(big.Int).SetBytes(raw[33:65])
		s.Sub(n, s).FillBytes(raw[33:65])
		raw[0] ^= 1
	})
	wrongHeader := btcTestEdit(t, cSig, func(raw []byte) { raw[0] = 0 })
	flippedHeader := btcTestEdit(t, cSig, func(raw []byte) { raw[0] ^= 1 })
	tamperedR := btcTestEdit(t, cSig, func(raw []byte) { raw[10] ^= 0x40 })
	tamperedS := btcTestEdit(t, cSig, func(raw []byte) { raw[64] ^= 0x01 })
	zeroR := btcTestEdit(t, cSig, func(raw []byte) { clear(raw[1:33]) })
	zeroS := btcTestEdit(t, cSig, func(raw []byte) { clear(raw[33:65]) })
	rIsN := btcTestEdit(t, cSig, func(raw []byte) { copy(raw[1:33], curveOrder[:]) })
	sIsN := btcTestEdit(t, cSig, func(raw []byte) { copy(raw[33:65], curveOrder[:]) })
	rMax := btcTestEdit(t, cSig, func(raw []byte) {
		for i := 1; i < 33; i++ {
			raw[i] = 0xff
		}
	})
	// A small r makes r+n a valid x coordinate, so recovery ids 2 and 3
	// are genuinely attempted.
	smallR := btcTestEdit(t, cSig, func(raw []byte) {
		clear(raw[1:33])
		raw[32] = 5
		raw[0] = 27 + 2
	})
	zero := base64.StdEncoding.EncodeToString(make([]byte, 65))
	bytes64 := base64.StdEncoding.EncodeToString(make([]byte, 64)) // 88 characters with "=="
	bytes66 := base64.StdEncoding.EncodeToString(make([]byte, 66)) // 88 characters, no padding

	tests := []struct {
		name, address, message, signature string
		want                              error
	}{
		{"reference vector", btcVectorAddress, btcVectorMessage, btcVectorSignature, nil},
		{"compressed key", cAddr, msg, cSig, nil},
		{"uncompressed key", uAddr, msg, uSig, nil},
		{"long message (varint 0xfd)", longAddr, long, longSig, nil},
		{"253-byte message", exactAddr, exact, exactSig, nil},
		{"any version byte", p2shLike, msg, cSig, nil},
		{"high S", cAddr, msg, highS, nil},
		{"header ignored", cAddr, msg, wrongHeader, nil},
		{"header recovery id wrong", cAddr, msg, flippedHeader, nil},
		{"compressed sig for uncompressed address", uAddr, msg, cSig, nil},

		{"other key's address", otherAddr, msg, cSig, ErrSignatureValue},
		{"reference vector, other address", cAddr, btcVectorMessage, btcVectorSignature, ErrSignatureValue},
		{"tampered message", cAddr, msg + ".", cSig, ErrSignatureValue},
		{"reference vector, tampered message", btcVectorAddress, "test messagE", btcVectorSignature, ErrSignatureValue},
		{"tampered r", cAddr, msg, tamperedR, ErrSignatureValue},
		{"tampered s", cAddr, msg, tamperedS, ErrSignatureValue},
		{"r zero", cAddr, msg, zeroR, ErrSignatureValue},
		{"s zero", cAddr, msg, zeroS, ErrSignatureValue},
		{"r = n", cAddr, msg, rIsN, ErrSignatureValue},
		{"s = n", cAddr, msg, sIsN, ErrSignatureValue},
		{"r > n", cAddr, msg, rMax, ErrSignatureValue},
		{"small r, recovery ids 2 and 3", cAddr, msg, smallR, ErrSignatureValue},
		{"all-zero signature", cAddr, msg, zero, ErrSignatureValue},

		{"87 characters", cAddr, msg, cSig[:87], ErrBitcoinSignatureLength},
		{"89 characters", cAddr, msg, cSig + "=", ErrBitcoinSignatureLength},
		{"12 characters", cAddr, msg, "c2lnbmF0dXJl", ErrBitcoinSignatureLength},
		{"empty", cAddr, msg, "", ErrBitcoinSignatureLength},
		{"bad base64", cAddr, msg, strings.Repeat("!", 88), ErrBitcoinSignatureFormat},
		{"url-safe base64", cAddr, msg, strings.Repeat("-", 88), ErrBitcoinSignatureFormat},
		{"88 characters, 64 bytes", cAddr, msg, bytes64, ErrBitcoinSignatureFormat},
		{"88 characters, 66 bytes", cAddr, msg, bytes66, ErrBitcoinSignatureFormat},
		{"padding inside", cAddr, msg, cSig[:40] + "=" + cSig[41:], ErrBitcoinSignatureFormat},

		{"not base58", "0OIl", msg, cSig, sluice.ErrInvalidAddress},
		{"bad checksum", btcVectorAddress[:33] + "W", btcVectorMessage, btcVectorSignature, sluice.ErrInvalidAddress},
		{"ethereum address", "0x52908400098527886E0F7030069857D2E4169EE7", msg, cSig, sluice.ErrInvalidAddress},
		{"19-byte hash", short, msg, cSig, sluice.ErrInvalidAddress},
		{"empty address", "", msg, cSig, sluice.ErrInvalidAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifyBitcoinMessage(tc.address, tc.message, tc.signature); got != tc.want {
				t.Errorf("VerifyBitcoinMessage(%q, %q, %q) = %v, want %v", tc.address, tc.message, tc.signature, got, tc.want)
			}
		})
	}
}

// TestVerifyBitcoinMessageFreshKeys signs with many keys so that both
// recovery parities and both encodings come up.
func TestVerifyBitcoinMessageFreshKeys(t *testing.T) {
	for i := range 32 {
		key := btcTestKey(t)
		msg := strings.Repeat("m", i*11)
		for _, compressed := range []bool{true, false} {
			addr, sig := btcTestSign(t, key, msg, compressed)
			if err := VerifyBitcoinMessage(addr, msg, sig); err != nil {
				t.Errorf("key %d, compressed %v: got %v, want nil", i, compressed, err)
			}
		}
	}
}

func TestBitcoinErrors(t *testing.T) {
	tests := []struct {
		err  *sluice.Error
		want string
	}{
		{ErrBitcoinSignatureLength, "Your signature is the wrong length. It should be 88 characters of base64 (65 bytes)."},
		{ErrBitcoinSignatureFormat, "Your signature is malformed: want 88 characters of standard base64 (65 bytes)."},
		{ErrSignatureValue, "Signature invalid."},
	}
	for _, tc := range tests {
		if got := sluice.Message(tc.err); got != tc.want {
			t.Errorf("message: got %q, want %q", got, tc.want)
		}
		if !errors.Is(tc.err, sluice.ErrInvalid) {
			t.Errorf("%q: got kind %v, want %v", tc.want, sluice.Kind(tc.err), sluice.ErrInvalid)
		}
	}
}

func TestBitcoinMessageHash(t *testing.T) {
	for _, msg := range []string{"", "test message", strings.Repeat("a", 252), strings.Repeat("b", 253), strings.Repeat("c", 1024)} {
		if got, want := hex.EncodeToString(bitcoinMessageHash(msg)), hex.EncodeToString(btcTestHash(msg)); got != want {
			t.Errorf("len %d: got %s, want %s", len(msg), got, want)
		}
	}
}

func TestAppendCompactSize(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "00"},
		{252, "fc"},
		{253, "fdfd00"},
		{0xffff, "fdffff"},
		{0x10000, "fe00000100"},
		{0xffffffff, "feffffffff"},
		{1 << 32, "ff0000000001000000"},
	}
	for _, tc := range tests {
		if got := hex.EncodeToString(appendCompactSize(nil, tc.n)); got != tc.want {
			t.Errorf("appendCompactSize(%d): got %s, want %s", tc.n, got, tc.want)
		}
	}
}

// TestRipemd160 checks the published test vectors and the padding edges.
func TestRipemd160(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"},
		{"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"},
		{"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"},
		{"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"},
		{"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "12a053384a9c0c88e405a06c27dcf49ada62eb2b"},
		{strings.Repeat("a", 55), "0d8a8c9063a48576a7c97e9f95253a6e53ff6765"},
		{strings.Repeat("a", 56), "e72334b46c83cc70bef979e15453706c95b888be"},
		{strings.Repeat("a", 64), "9dfb7d374ad924f3f88de96291c33e9abed53e32"},
		{strings.Repeat("a", 1000000), "52783243c1697bdbe16d37f97f68f08325dc1528"},
	}
	for _, tc := range tests {
		got := ripemd160([]byte(tc.in))
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("ripemd160(%d bytes): got %x, want %s", len(tc.in), got, tc.want)
		}
	}
}

// TestHash160Vector checks HASH160 end to end: the key recovered from the
// reference vector hashes to its address.
func TestHash160Vector(t *testing.T) {
	payload, err := sluice.Base58CheckDecode(btcVectorAddress)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(btcVectorSignature)
	if err != nil {
		t.Fatal(err)
	}
	sig := append(raw[1:65:65], (raw[0]-27)&3)
	pub, err := crypto.SigToPub(btcTestHash(btcVectorMessage), sig)
	if err != nil {
		t.Fatal(err)
	}
	if got := hash160(crypto.CompressPubkey(pub)); hex.EncodeToString(got[:]) != hex.EncodeToString(payload[1:]) {
		t.Errorf("hash160: got %x, want %x", got, payload[1:])
	}
}
