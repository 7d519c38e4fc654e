package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/nodetest"
)

// TestWhitelistImport runs the real binary: import a CSV, start the node
// with the whitelist on, and check who gets a token; then import a new
// list that drops an address.
func TestWhitelistImport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	csv := filepath.Join(dir, "list.csv")
	listed, poor, other := "19qVgG8C6eXwKMMyvVegsi3xCsKyk3Z3jV", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "0x0000000000000000000000000000000000000007"
	os.WriteFile(csv, []byte("address,balance\n"+listed+",10000\n"+poor+",9999\n"), 0o600)
	data := filepath.Join(dir, "data")
	imp := func() string {
		out, err := exec.Command(binary(t), "whitelist", "import", "--data-dir", data, csv).CombinedOutput()
		if err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := imp(); !strings.Contains(out, "2 addresses listed, 0 dropped") {
		t.Fatalf("import said %q", out)
	}
	// A bad file changes nothing and says which line is wrong.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("address,balance\nnot-an-address,5\n"), 0o600)
	if out, err := exec.Command(binary(t), "whitelist", "import", "--data-dir", data, bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "line 2") {
		t.Fatalf("bad file: %v\n%s", err, out)
	}

	// A flag after the file is named as such.
	if out, err := exec.Command(binary(t), "whitelist", "import", csv, "--data-dir", data).CombinedOutput(); err == nil || !strings.Contains(string(out), "flags go before the file") {
		t.Fatalf("flag after the file: %v\n%s", err, out)
	}

	p := startServe(t, []string{"SLUICE_DATA_DIR=" + data, "SLUICE_WHITELIST=true"})
	for addr, want := range map[string]int{listed: 200, poor: 400, other: 400} {
		var body map[string]any
		if code := nodetest.Call(t, "GET", p.api+"/new/"+addr, nil, &body); code != want {
			t.Fatalf("/new/%s: %d %v, want %d", addr, code, body, want)
		}
		if want == 400 && body["message"] != "Invalid address given: address must be in whitelist." {
			t.Fatalf("/new/%s: message %v", addr, body["message"])
		}
	}
	p.kill(t)

	os.WriteFile(csv, []byte("address,balance\n"+poor+",20000\n"), 0o600)
	if out := imp(); !strings.Contains(out, "1 address listed, 1 dropped") {
		t.Fatalf("second import said %q", out)
	}
	p = startServe(t, []string{"SLUICE_DATA_DIR=" + data, "SLUICE_WHITELIST=true"})
	for addr, want := range map[string]int{listed: 400, poor: 200} {
		if code := nodetest.Call(t, "GET", p.api+"/new/"+addr, nil, nil); code != want {
			t.Fatalf("after the second import /new/%s: %d, want %d", addr, code, want)
		}
	}
}
