package farmer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTokenFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := LoadToken(dir); ok || err != nil {
		t.Fatalf("missing file: got ok=%v err=%v, want false, nil", ok, err)
	}
	want := TokenFile{Node: "http://node.example:8080/", Address: "0xabc", Token: "00112233445566778899aabbccddeeff"}
	if err := SaveToken(dir, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := LoadToken(dir)
	if err != nil || !ok {
		t.Fatalf("LoadToken: got ok=%v err=%v", ok, err)
	}
	want.Node = "http://node.example:8080" // stored normalized
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	st, err := os.Stat(filepath.Join(dir, TokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Fatalf("got mode %o, want 600", mode)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("got %d files, want only %s", len(entries), TokenFileName)
	}

	// Saving again replaces the file.
	want.Token = "ffeeddccbbaa99887766554433221100"
	if err := SaveToken(dir, want); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := LoadToken(dir); got.Token != want.Token {
		t.Fatalf("got token %s, want %s", got.Token, want.Token)
	}
}

func TestLoadTokenCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenFileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := LoadToken(dir); ok || err == nil {
		t.Fatalf("got ok=%v err=%v, want false and an error", ok, err)
	}
}

func TestTokenReusable(t *testing.T) {
	saved := TokenFile{Node: "https://node.example", Address: "0xabc", Token: "00112233445566778899aabbccddeeff"}
	tests := []struct {
		name          string
		saved         TokenFile
		node, address string
		want          bool
	}{
		{"same", saved, "https://node.example", "0xabc", true},
		{"trailing slash", saved, "https://node.example/", "0xabc", true},
		{"api prefix given", saved, "https://node.example/api/downstream/v1/", "0xabc", true},
		{"other node", saved, "https://other.example", "0xabc", false},
		{"other port", saved, "https://node.example:8443", "0xabc", false},
		{"other scheme", saved, "http://node.example", "0xabc", false},
		{"other address", saved, "https://node.example", "0xdef", false},
		{"no token", TokenFile{Node: saved.Node, Address: saved.Address}, "https://node.example", "0xabc", false},
	}
	for _, tt := range tests {
		if got := tt.saved.Reusable(tt.node, tt.address); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
