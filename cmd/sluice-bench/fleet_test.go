package main

import "testing"

func TestParseStatTicks(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
		ok   bool
	}{
		{"4242 (sluice) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 0 0 20 0 12 0 100 0 0", 1801, true},
		// A command name holding spaces and a parenthesis.
		{"7 (a b) c) R 1 7 7 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 1 0 0", 15, true},
		{"7 (x) R 1 2", 0, false},
		{"no parenthesis", 0, false},
	} {
		got, err := parseStatTicks(tc.line)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStatTicks(%q) = %d, %v; want %d, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := "# HELP sluice_contracts_live Contracts.\n# TYPE sluice_contracts_live gauge\n" +
		"sluice_contracts_live 1e+06\nsluice_recovery_seconds 12.5\n" +
		"sluice_proofs_total{result=\"accepted\"} 7\n"
	m := parseMetrics(text)
	if got := m["sluice_contracts_live"]; got != 1e6 {
		t.Errorf("sluice_contracts_live = %v, want 1e6", got)
	}
	if got := m["sluice_recovery_seconds"]; got != 12.5 {
		t.Errorf("sluice_recovery_seconds = %v, want 12.5", got)
	}
	if _, ok := m["sluice_proofs_total"]; ok || len(m) != 2 {
		t.Errorf("got %v, want only the two unlabelled series", m)
	}
}

func TestHistogram(t *testing.T) {
	text := "# TYPE sluice_snapshot_commit_seconds histogram\n" +
		"sluice_snapshot_commit_seconds_bucket{le=\"0.05\"} 90\n" +
		"sluice_snapshot_commit_seconds_bucket{le=\"+Inf\"} 100\n" +
		"sluice_snapshot_commit_seconds_sum 1.5\n" +
		"sluice_snapshot_batch_rows_bucket{le=\"+Inf\"} 7\n"
	h := histogram(text, "sluice_snapshot_commit_seconds")
	if h["0.05"] != 90 || h["+Inf"] != 100 || len(h) != 2 {
		t.Errorf("got %v, want 0.05: 90 and +Inf: 100", h)
	}
}
