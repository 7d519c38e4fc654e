package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math/bits"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
)

// Bitcoin signed-message errors, with the messages the APIs send. A
// well-formed signature that does not match the address is
// ErrSignatureValue ("Signature invalid."), as on the Ethereum path; an
// address that is not base58check over a 20-byte hash is
// sluice.ErrInvalidAddress.
var (
	ErrBitcoinSignatureLength = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Your signature is the wrong length. It should be 88 characters of base64 (65 bytes)."}
	ErrBitcoinSignatureFormat = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Your signature is malformed: want 88 characters of standard base64 (65 bytes)."}
)

// bitcoinSignatureChars is the length of a compact signature in padded
// base64: 4·⌈65/3⌉.
const bitcoinSignatureChars = 88

// bitcoinMessagePrefix is the magic that Bitcoin's signmessage puts before
// the message: its own length byte (24) and "Bitcoin Signed Message:\n".
const bitcoinMessagePrefix = "\x18Bitcoin Signed Message:\n"

// curveOrder is n, the order of secp256k1, big-endian.
var curveOrder = [32]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
	0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b,
	0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
}

// VerifyBitcoinMessage checks that address signed message with Bitcoin's
// signmessage: signature is the 65-byte compact signature (header, r, s) in
// standard padded base64, over
// SHA256(SHA256("\x18Bitcoin Signed Message:\n" + varint(len) + message)).
//
// Like siggy, which the original node used, the header byte is not trusted:
// every recovery id 0..3 is tried, and the signature is accepted if the
// HASH160 of the compressed or the uncompressed encoding of any recovered
// key is the address's hash. The header only picks which id to try first.
// Trying eight candidates instead of one leaves a forger a 2^-157 chance
// rather than 2^-160. Any version byte is accepted, as siggy did.
//
// High-S signatures are accepted, unlike on the Ethereum path
// (DecodeSignature refuses them, as the uploader spec asks). This is a
// decision: the farmer spec is silent, the reference verifier (siggy, over
// pycoin) accepts any s in [1, n−1], and so does Bitcoin Core's
// verifymessage (public-key recovery has no low-S rule; BIP 62/146 only
// cover transaction signatures). Wallets from before low-S normalisation
// produce them, and negating s only yields the same key under the other
// recovery id, so rejecting them would refuse genuine owners without making
// forgery any harder. Malleability does not matter here because nothing is
// identified by the signature's bytes: replay is refused per (address,
// message).
func VerifyBitcoinMessage(address, message, signature string) error {
	payload, err := sluice.Base58CheckDecode(address)
	if err != nil || len(payload) != 1+20 {
		return sluice.ErrInvalidAddress
	}
	want := payload[1:]

	if len(signature) != bitcoinSignatureChars {
		return ErrBitcoinSignatureLength
	}
	raw, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(raw) != crypto.SignatureLength {
		return ErrBitcoinSignatureFormat
	}
	r, s := raw[1:33], raw[33:65]
	if !scalarInRange(r) || !scalarInRange(s) {
		return ErrSignatureValue
	}

	z := bitcoinMessageHash(message)
	sig := make([]byte, crypto.SignatureLength) // R‖S‖V, go-ethereum's layout
	copy(sig, raw[1:])
	first := byte(0)
	if h := raw[0]; h >= 27 && h <= 42 {
		first = (h - 27) & 3
	}
	for i := range byte(4) {
		sig[crypto.RecoveryIDOffset] = first ^ i
		pub, err := crypto.Ecrecover(z, sig) // 0x04‖X‖Y
		if err != nil || len(pub) != 65 {
			continue // ids 2 and 3 exist only for the rare r ≥ p−n
		}
		compressed := make([]byte, 33)
		compressed[0] = 0x02 | pub[64]&1
		copy(compressed[1:], pub[1:33])
		if c := hash160(compressed); bytes.Equal(c[:], want) {
			return nil
		}
		if u := hash160(pub); bytes.Equal(u[:], want) {
			return nil
		}
	}
	return ErrSignatureValue
}

// VerifyAddressSignature checks that address, of the given kind, signed
// message: EIP-191 personal_sign for Ethereum addresses, Bitcoin
// signmessage for base58 ones.
func VerifyAddressSignature(address string, kind sluice.AddressKind, message, signature string) error {
	switch kind {
	case sluice.AddressEthereum:
		return VerifyPersonal(address, []byte(message), signature)
	case sluice.AddressBase58:
		return VerifyBitcoinMessage(address, message, signature)
	default:
		return sluice.ErrInvalidAddress
	}
}

// scalarInRange tells whether the 32-byte big-endian b is in [1, n−1].
func scalarInRange(b []byte) bool {
	return bytes.Compare(b, curveOrder[:]) < 0 && !bytes.Equal(b, make([]byte, len(b)))
}

// bitcoinMessageHash is the digest that signmessage signs.
func bitcoinMessageHash(message string) []byte {
	b := make([]byte, 0, len(bitcoinMessagePrefix)+9+len(message))
	b = append(b, bitcoinMessagePrefix...)
	b = appendCompactSize(b, uint64(len(message)))
	b = append(b, message...)
	h1 := sha256.Sum256(b)
	h2 := sha256.Sum256(h1[:])
	return h2[:]
}

// appendCompactSize appends n as Bitcoin's variable-length integer.
func appendCompactSize(b []byte, n uint64) []byte {
	switch {
	case n < 0xfd:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(n))
	case n <= 0xffffffff:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(n))
	default:
		return binary.LittleEndian.AppendUint64(append(b, 0xff), n)
	}
}

// hash160 is RIPEMD160(SHA256(b)), the hash in a P2PKH address.
func hash160(b []byte) [20]byte {
	h := sha256.Sum256(b)
	return ripemd160(h[:])
}

// RIPEMD-160 (Dobbertin, Bosselaers, Preneel 1996). It is written out here
// because the standard library lacks it and golang.org/x/crypto/ripemd160 is
// deprecated (and x/crypto only an indirect requirement of this module); the
// tests check it against the published vectors and the padding edges.
var (
	rmdR = [80]uint8{
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8,
		3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12,
		1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2,
		4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13,
	}
	rmdRp = [80]uint8{
		5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12,
		6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2,
		15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13,
		8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14,
		12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11,
	}
	rmdS = [80]uint8{
		11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8,
		7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12,
		11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5,
		11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12,
		9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6,
	}
	rmdSp = [80]uint8{
		8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6,
		9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11,
		9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5,
		15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8,
		8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11,
	}
	rmdK  = [5]uint32{0x00000000, 0x5a827999, 0x6ed9eba1, 0x8f1bbcdc, 0xa953fd4e}
	rmdKp = [5]uint32{0x50a28be6, 0x5c4dd124, 0x6d703ef3, 0x7a6d76e9, 0x00000000}
)

// rmdF is RIPEMD-160's nonlinear function for round j (0..79).
func rmdF(j int, x, y, z uint32) uint32 {
	switch j / 16 {
	case 0:
		return x ^ y ^ z
	case 1:
		return x&y | ^x&z
	case 2:
		return (x | ^y) ^ z
	case 3:
		return x&z | y&^z
	default:
		return x ^ (y | ^z)
	}
}

// ripemd160 returns the RIPEMD-160 digest of msg.
func ripemd160(msg []byte) [20]byte {
	h := [5]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0}

	// Pad as MD4 does: 0x80, zeros to 56 mod 64, the bit length little-endian.
	padded := make([]byte, 0, len(msg)+72)
	padded = append(padded, msg...)
	padded = append(padded, 0x80)
	for len(padded)%64 != 56 {
		padded = append(padded, 0)
	}
	padded = binary.LittleEndian.AppendUint64(padded, uint64(len(msg))<<3)

	var x [16]uint32
	for block := padded; len(block) > 0; block = block[64:] {
		for i := range x {
			x[i] = binary.LittleEndian.Uint32(block[4*i:])
		}
		a, b, c, d, e := h[0], h[1], h[2], h[3], h[4]
		ap, bp, cp, dp, ep := a, b, c, d, e
		for j := range 80 {
			t := bits.RotateLeft32(a+rmdF(j, b, c, d)+x[rmdR[j]]+rmdK[j/16], int(rmdS[j])) + e
			a, e, d, c, b = e, d, bits.RotateLeft32(c, 10), b, t
			t = bits.RotateLeft32(ap+rmdF(79-j, bp, cp, dp)+x[rmdRp[j]]+rmdKp[j/16], int(rmdSp[j])) + ep
			ap, ep, dp, cp, bp = ep, dp, bits.RotateLeft32(cp, 10), bp, t
		}
		t := h[1] + c + dp
		h[1] = h[2] + d + ep
		h[2] = h[3] + e + ap
		h[3] = h[4] + a + bp
		h[4] = h[0] + b + cp
		h[0] = t
	}

	var out [20]byte
	for i, v := range h {
		binary.LittleEndian.PutUint32(out[4*i:], v)
	}
	return out
}
