package farmer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// TokenFileName is the name of the saved token in a farmer's directory.
const TokenFileName = "token.json"

// TokenFile is a farmer's saved identity on one node, kept in
// Dir/token.json (mode 0600: the token is a bearer secret) so that a
// restarted farmer keeps its token and contracts.
type TokenFile struct {
	Node    string `json:"node"`
	Address string `json:"address"`
	Token   string `json:"token"`
}

// Reusable reports whether the saved token may be used for node and
// address: both must match (node URLs are compared in normalized form), and
// a token must be present.
func (t TokenFile) Reusable(node, address string) bool {
	return t.Token != "" && t.Address == address && NormalizeNode(t.Node) == NormalizeNode(node)
}

// LoadToken reads dir/token.json. A missing file gives ok false and no
// error.
func LoadToken(dir string) (t TokenFile, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, TokenFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return TokenFile{}, false, nil
	}
	if err != nil {
		return TokenFile{}, false, fmt.Errorf("farmer: reading token file: %w", err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return TokenFile{}, false, fmt.Errorf("farmer: parsing %s: %w", filepath.Join(dir, TokenFileName), err)
	}
	return t, true, nil
}

// SaveToken writes dir/token.json atomically (a temporary file renamed
// over the old one) with mode 0600. The node URL is stored normalized.
func SaveToken(dir string, t TokenFile) error {
	t.Node = NormalizeNode(t.Node)
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("farmer: encoding token file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".token-*.tmp") // created with mode 0600
	if err != nil {
		return fmt.Errorf("farmer: saving token: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, TokenFileName))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("farmer: saving token: %w", err)
	}
	return nil
}
