package sluice_test

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice"
)

func TestParseAddressChecksum(t *testing.T) {
	const good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed" // EIP-55's own example
	for _, s := range []string{good, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"} {
		got, kind, err := sluice.ParseAddress(s)
		if err != nil || kind != sluice.AddressEthereum || got != "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed" {
			t.Fatalf("ParseAddress(%s) = %s, %v, %v; want the lowercased address", s, got, kind, err)
		}
	}
	for _, s := range []string{
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAee", // last character mistyped
		"0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", // one letter's case wrong
	} {
		if _, _, err := sluice.ParseAddress(s); !errors.Is(err, sluice.ErrInvalid) {
			t.Fatalf("ParseAddress(%s): error %v, want a checksum error", s, err)
		}
	}
}
