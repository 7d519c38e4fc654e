package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestServeConfigFromFlagsAndEnvironment(t *testing.T) {
	t.Setenv("SLUICE_CHALLENGE_INTERVAL", "2s")
	t.Setenv("SLUICE_CHUNK_SIZES", "1KiB, 64KiB")
	t.Setenv("SLUICE_MAX_BYTES_PER_ADDRESS", "2GiB")
	c, err := parseServe([]string{"--challenge-interval", "3s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.interval != 3*time.Second {
		t.Fatalf("interval: got %s, want the flag's 3s over the variable's 2s", c.interval)
	}
	if len(c.chunkSizes) != 2 || c.chunkSizes[0] != 1024 || c.chunkSizes[1] != 65536 {
		t.Fatalf("chunk sizes: got %v, want [1024 65536]", c.chunkSizes)
	}
	if c.maxPerAddress != 2<<30 {
		t.Fatalf("max per address: got %d, want %d", c.maxPerAddress, 2<<30)
	}
	if c.dataDir != "./data" || c.databaseURL != "" {
		t.Fatalf("store: got %q %q, want the embedded default", c.dataDir, c.databaseURL)
	}
}

func TestServeConfigErrorsAreReportedTogether(t *testing.T) {
	t.Setenv("SLUICE_REQUIRE_SIGNATURE", "maybe")
	_, err := parseServe([]string{"--challenge-interval", "1ms", "--leaf-size", "0"}, io.Discard)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"SLUICE_REQUIRE_SIGNATURE", "--challenge-interval", "--leaf-size"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %s", err, want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "32768": 32768, "1KiB": 1024, "32MiB": 32 << 20, "2 GiB": 2 << 30, "1TiB": 1 << 40} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Fatalf("parseBytes(%q): got %d, %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "lots", "99999999999TiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Fatalf("parseBytes(%q) accepted", bad)
		}
	}
}

// TestREADMEDocumentsEveryServeFlag: every flag of `sluice serve` has its
// row in the README's table for it, with its variable, and the table names
// no flag that serve does not have.
func TestREADMEDocumentsEveryServeFlag(t *testing.T) {
	var usage bytes.Buffer
	parseServe([]string{"-h"}, &usage)
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(usage.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 20 {
		t.Fatalf("read %d flags from the usage text:\n%s", len(flags), usage.String())
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n### `sluice serve`\n")
	if !ok {
		t.Fatal("README: no section \"### `sluice serve`\"")
	}
	table, _, _ = strings.Cut(table, "\n#")
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\| `(SLUICE_[A-Z0-9_]+)` \\|").FindAllStringSubmatch(table, -1) {
		rows[m[1]] = true
		if want := "SLUICE_" + strings.ToUpper(strings.ReplaceAll(m[1], "-", "_")); m[2] != want {
			t.Errorf("README: --%s is documented with %s, want %s", m[1], m[2], want)
		}
	}
	for f := range flags {
		if !rows[f] {
			t.Errorf("README: no row for --%s in the serve table", f)
		}
	}
	for f := range rows {
		if !flags[f] {
			t.Errorf("README documents --%s, which serve does not have", f)
		}
	}
}

// TestServeRefusesWhatItWouldIgnore: a stray word (after which the flag
// package stops reading), a rate that is not a number or would overflow
// Retry-After, and values that would silently misbehave are errors.
func TestServeRefusesWhatItWouldIgnore(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data-dir", "d", "oops", "--challenge-interval", "1ms"}, `unexpected argument "oops"`},
		{[]string{"--token-rate", "NaN"}, "--token-rate"},
		{[]string{"--token-rate", "+Inf"}, "--token-rate"},
		{[]string{"--token-rate", "1e-300"}, "--token-rate"},
		{[]string{"--quote-rate", "-1"}, "--quote-rate"},
		{[]string{"--quote-rate", "NaN"}, "--quote-rate"},
		{[]string{"--quote-burst", "0"}, "--quote-burst"},
		{[]string{"--archive-retention", "-1s"}, "--archive-retention"},
		{[]string{"--archive-retention", "59m"}, "--archive-retention"},
		{[]string{"--shutdown-timeout", "0s"}, "--shutdown-timeout"},
		{[]string{"--shutdown-timeout", "-5s"}, "--shutdown-timeout"},
		{[]string{"--listen", ""}, "--listen"},
		{[]string{"--private-listen", " "}, "--private-listen"},
		{[]string{"--upload-retention", "-1h"}, "--upload-retention"},
		{[]string{"--upload-retention", "0s"}, "--upload-retention"},
		{[]string{"--chain-id", "-3"}, "--chain-id"},
		{[]string{"--builtin-type", " "}, "--builtin-type"},
		{[]string{"--gc-headroom", "-1"}, "gc-headroom"},
	} {
		_, err := parseServe(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
	if _, err := parseServe([]string{"--token-rate", "0.5"}, io.Discard); err != nil {
		t.Fatalf("--token-rate 0.5: %v", err)
	}
}

// TestBadValuesAreOneLine: a bad flag value is one error naming the flag
// and what it takes, with no usage dump; a bad variable is reported once,
// not again by a range check on a value nobody gave; -h prints the usage.
func TestBadValuesAreOneLine(t *testing.T) {
	var out bytes.Buffer
	_, err := parseServe([]string{"--archive-retention", "5"}, &out)
	if err == nil || !strings.Contains(err.Error(), "-archive-retention") || !strings.Contains(err.Error(), "want a duration") {
		t.Errorf("--archive-retention 5: error %v, want one naming the flag and a duration", err)
	}
	if out.Len() != 0 {
		t.Errorf("--archive-retention 5 printed %q, want nothing (the caller prints the error)", out.String())
	}
	t.Setenv("SLUICE_QUOTE_BURST", "x")
	_, err = parseServe(nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `SLUICE_QUOTE_BURST="x"`) || strings.Contains(err.Error(), "--quote-burst") {
		t.Errorf("SLUICE_QUOTE_BURST=x: error %v, want it named once, without a range error for --quote-burst", err)
	}
	t.Setenv("SLUICE_QUOTE_BURST", "")
	out.Reset()
	if _, err := parseServe([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-archive-retention") {
		t.Errorf("-h: %v, printed %d bytes; want ErrHelp and the usage", err, out.Len())
	}
}

func TestFarmerRefusesWhatItWouldIgnore(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--address", "0xabc", "extra", "--size", "-5"}, `unexpected argument "extra"`},
		{[]string{"--address", "0xabc", "--progress-every", "0s"}, "--progress-every"},
		{[]string{"--address", "0xabc", "--batch-window", "-1s"}, "--batch-window"},
	} {
		err := farmerCmd(t.Context(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

// TestFarmerBatchWindowZeroSendsAtOnce: --batch-window 0 is no batching,
// not the library's default window of a second.
func TestFarmerBatchWindowZeroSendsAtOnce(t *testing.T) {
	cfg, _, err := parseFarmer([]string{"--address", "0xabc", "--batch-window", "0"}, io.Discard)
	if err != nil || cfg.BatchWindow >= 0 {
		t.Fatalf("--batch-window 0: window %v, %v; want a negative window (send at once)", cfg.BatchWindow, err)
	}
	cfg, _, err = parseFarmer([]string{"--address", "0xabc"}, io.Discard)
	if err != nil || cfg.BatchWindow != time.Second {
		t.Fatalf("default: window %v, %v; want 1s", cfg.BatchWindow, err)
	}
}

// TestFarmerNodeAsTheClientTakesIt: --node is checked as the farmer's
// client reads it, surrounding white space (from an env file) trimmed.
func TestFarmerNodeAsTheClientTakesIt(t *testing.T) {
	for _, node := range []string{"http://127.0.0.1:8000\n", " https://node.example/api/downstream/v1 "} {
		if _, _, err := parseFarmer([]string{"--address", "0xabc", "--node", node}, io.Discard); err != nil {
			t.Errorf("--node %q: %v, want it taken", node, err)
		}
	}
}

// TestUsageErrorsExitWithTwo: a command line that cannot run exits with
// status 2 whichever command it names, as the flag package's own errors
// do; a command that fails while running exits with 1.
func TestUsageErrorsExitWithTwo(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"serve", "--bogus"}, 2},
		{[]string{"serve", "--chunk-sizes", "abc"}, 2},
		{[]string{"serve", "--data-dir", dir, "oops"}, 2},
		{[]string{"serve", "--log-level", "loud", "--data-dir", dir}, 2},
		{[]string{"farmer", "--bogus"}, 2},
		{[]string{"farmer", "--address", "0xabc", "--size", "abc"}, 2},
		{[]string{"farmer", "--address", "0xabc", "--log-level", "loud"}, 2},
		{[]string{"whitelist", "import", "--bogus", "x.csv"}, 2},
		{[]string{"whitelist", "import", "a.csv", "b.csv"}, 2},
		{[]string{"sim", "--bogus"}, 2},
		{[]string{"nonsense"}, 2},
		{[]string{"version", "extra"}, 2},
		{[]string{"serve", "--data-dir", dir, "--listen", ":99999"}, 2},
		{[]string{"serve", "--data-dir", dir, "--private-listen", "localhost"}, 2},
		{[]string{"serve", "--database-url", "::::"}, 2},
		{[]string{"farmer", "--address", "0xabc", "--node", "::"}, 2},
		{[]string{"farmer", "--address", "0xabc", "--node", "ftp://x"}, 2},
		{[]string{"version"}, 0},
		// A certificate file that cannot be read is a failure to start,
		// not a usage error; nor is a node URL with a stray line break.
		{[]string{"serve", "--database-url", "postgres://127.0.0.1:1/x?sslmode=verify-full&sslrootcert=" + dir + "/missing.pem",
			"--shutdown-timeout", "1s"}, 1},
		{[]string{"serve", "-h"}, 0},
		{[]string{"whitelist", "import", "--data-dir", dir, dir + "/missing.csv"}, 1},
	} {
		var stdout, stderr strings.Builder
		if got := run(context.Background(), tc.args, &stdout, &stderr); got != tc.want {
			t.Errorf("sluice %q: exit %d, want %d (stderr %q)", tc.args, got, tc.want, stderr.String())
		}
	}
}
