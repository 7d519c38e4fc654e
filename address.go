package sluice

import (
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// AddressKind tells how a payout address is written and how its owner signs.
type AddressKind uint8

const (
	// AddressEthereum: 0x followed by 40 hex characters; EIP-191 signatures.
	AddressEthereum AddressKind = iota + 1
	// AddressBase58: a Bitcoin-style base58check address (SJCX in the
	// original network); Bitcoin signed-message signatures.
	AddressBase58
)

// ErrInvalidAddress is the answer to an address that is neither kind.
var ErrInvalidAddress = &Error{Kind: ErrInvalid, Message: "Invalid address given: address is not a valid Ethereum or base58check address."}

// ErrAddressChecksum is the answer to a mixed-case Ethereum address whose
// EIP-55 checksum does not match.
var ErrAddressChecksum = &Error{Kind: ErrInvalid, Message: "Invalid address given: the mixed-case (EIP-55) checksum does not match; check the address for a typo."}

// ParseAddress tells the kind of a payout address and returns its canonical
// form: Ethereum addresses lowercased, base58 ones unchanged.
func ParseAddress(s string) (string, AddressKind, error) {
	if len(s) == 42 && (strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X")) {
		if _, err := hex.DecodeString(s[2:]); err != nil {
			return "", 0, ErrInvalidAddress
		}
		// Mixed case is an EIP-55 checksum, as wallets write addresses: a
		// mistyped character fails it, and a payout would go to an
		// address nobody holds. All lower or all upper case has none.
		hexPart := s[2:]
		if hexPart != strings.ToLower(hexPart) && hexPart != strings.ToUpper(hexPart) &&
			common.HexToAddress(s).Hex()[2:] != hexPart {
			return "", 0, ErrAddressChecksum
		}
		return "0x" + strings.ToLower(hexPart), AddressEthereum, nil
	}
	if _, err := Base58CheckDecode(s); err == nil {
		return s, AddressBase58, nil
	}
	return "", 0, ErrInvalidAddress
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// Base58CheckDecode decodes a base58check string and verifies its 4-byte
// double-SHA-256 checksum; it returns the payload (version byte included).
func Base58CheckDecode(s string) ([]byte, error) {
	bad := Errorf(ErrInvalid, "invalid base58check string")
	if len(s) == 0 || len(s) > 128 {
		return nil, bad
	}
	n := new(big.Int)
	radix := big.NewInt(58)
	for _, r := range s {
		i := strings.IndexRune(base58Alphabet, r)
		if i < 0 {
			return nil, bad
		}
		n.Mul(n, radix)
		n.Add(n, big.NewInt(int64(i)))
	}
	body := n.Bytes()
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	b := append(make([]byte, zeros), body...)
	if len(b) < 5 {
		return nil, bad
	}
	payload, sum := b[:len(b)-4], b[len(b)-4:]
	h1 := sha256.Sum256(payload)
	h2 := sha256.Sum256(h1[:])
	if string(h2[:4]) != string(sum) {
		return nil, bad
	}
	return payload, nil
}
