package contracts

import (
	"bytes"
	"testing"
)

// TestEmbeddedArtifacts: the committed ABI has the ERC-20 surface plus
// mint, and the bytecode decodes. (Deployment runs in chain's tests, on the
// simulated backend.)
func TestEmbeddedArtifacts(t *testing.T) {
	a := TokenABI()
	for _, m := range []string{"name", "symbol", "decimals", "totalSupply", "balanceOf", "transfer", "allowance", "approve", "transferFrom", "mint"} {
		if _, ok := a.Methods[m]; !ok {
			t.Errorf("ABI: method %s missing", m)
		}
	}
	for _, e := range []string{"Transfer", "Approval"} {
		if _, ok := a.Events[e]; !ok {
			t.Errorf("ABI: event %s missing", e)
		}
	}
	if got := len(a.Constructor.Inputs); got != 2 {
		t.Errorf("constructor inputs: got %d, want 2 (name, symbol)", got)
	}
	if got := a.Events["Transfer"].ID.Hex(); got != "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef" {
		t.Errorf("Transfer topic: got %s, want the ERC-20 one", got)
	}

	code := TokenBytecode()
	if len(code) < 100 {
		t.Fatalf("bytecode: got %d bytes, want a contract", len(code))
	}
	code[0] ^= 0xff
	if bytes.Equal(code, TokenBytecode()) {
		t.Error("TokenBytecode shares its buffer with callers")
	}
}
