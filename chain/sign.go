// Package chain is Sluice's use of Ethereum: recovering the signer of an
// EIP-191 personal message, and (for the uploader) ERC-20 payment.
package chain

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sluicehq/sluice"
)

// Signature errors, with the messages the APIs send.
var (
	ErrSignatureFormat = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Your signature is malformed: want 0x followed by 130 hex characters (65 bytes)."}
	ErrSignatureLength = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Your signature is the wrong length. It should be 65 bytes (130 hex characters)."}
	ErrSignatureValue  = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Signature invalid."}
	// ErrSignatureMalleable refuses a high-S signature: s above n/2, the
	// twin (r, n−s, flipped V) of a valid low-S signature. Wallets and
	// go-ethereum sign low-S (EIP-2); the uploader spec refuses the twin.
	ErrSignatureMalleable = &sluice.Error{Kind: sluice.ErrInvalid, Message: "Signature invalid: its s value is in the upper half of the curve order (a malleable signature); sign again with a standard wallet, which signs with a low s."}
)

// halfOrder is n/2, n being the order of secp256k1: the largest s of a
// canonical (low-S) signature.
var halfOrder = new(big.Int).Rsh(crypto.S256().Params().N, 1)

// DecodeSignature parses a 65-byte R‖S‖V signature in hex, with or without
// 0x, V being 0/1 or 27/28. It returns V as 0/1. r and s must lie in
// [1, n−1] and s must be at most n/2 (go-ethereum's homestead rule): a
// high-S signature is ErrSignatureMalleable.
func DecodeSignature(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, ErrSignatureFormat
	}
	if len(b) != crypto.SignatureLength {
		return nil, ErrSignatureLength
	}
	if b[crypto.RecoveryIDOffset] >= 27 {
		b[crypto.RecoveryIDOffset] -= 27
	}
	r, sv := new(big.Int).SetBytes(b[:32]), new(big.Int).SetBytes(b[32:64])
	if !crypto.ValidateSignatureValues(b[crypto.RecoveryIDOffset], r, sv, true) {
		if sv.Cmp(halfOrder) > 0 && crypto.ValidateSignatureValues(b[crypto.RecoveryIDOffset], r, sv, false) {
			return nil, ErrSignatureMalleable
		}
		return nil, ErrSignatureValue
	}
	return b, nil
}

// RecoverPersonal returns the address that signed message under EIP-191
// (personal_sign: keccak256("\x19Ethereum Signed Message:\n" + len + message)).
// It refuses high-S signatures (DecodeSignature): crypto.SigToPub alone
// would recover the same signer from both twins.
func RecoverPersonal(message []byte, signature string) (common.Address, error) {
	sig, err := DecodeSignature(signature)
	if err != nil {
		return common.Address{}, err
	}
	pub, err := crypto.SigToPub(accounts.TextHash(message), sig)
	if err != nil {
		return common.Address{}, ErrSignatureValue
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// VerifyPersonal checks that address signed message.
func VerifyPersonal(address string, message []byte, signature string) error {
	signer, err := RecoverPersonal(message, signature)
	if err != nil {
		return err
	}
	if !common.IsHexAddress(address) || !bytes.Equal(signer.Bytes(), common.HexToAddress(address).Bytes()) {
		return ErrSignatureValue
	}
	return nil
}
