package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sim"
)

// TestSimSmoke is the smoke scenario of `make test`: `sluice sim smoke`,
// run as a process against the real binary started as the README says (a
// 1s challenge interval, no per-IP token limit) on a fresh embedded store. Honest contracts never expire, every made-up proof is
// rejected, the uploads complete, and the ledger matches.
func TestSimSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and a 20s simulation")
	}
	t.Parallel()
	// A 2s interval rather than the README's 1s: the node and the
	// simulator share the machine with the other packages' tests.
	p := startServe(t, []string{"SLUICE_DATA_DIR=" + t.TempDir(), "SLUICE_DATABASE_URL="},
		"--challenge-interval", "2s", "--max-tokens-per-ip", "0")
	node := strings.TrimSuffix(p.api, "/api/downstream/v1")
	page := filepath.Join(t.TempDir(), "report.html")
	stdout, stderr, code := simProcess(t, "smoke", "--node", node, "--interval", "2s", "--json", "--html", page)
	var rep sim.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, stdout is not a JSON report (%v):\n%s\nstderr:\n%s", code, err, stdout.String(), stderr.String())
	}
	defer func() {
		if t.Failed() {
			t.Logf("report:\n%s", stdout.String())
		}
	}()
	if code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, lastLines(stderr.String(), 5))
	}

	kinds := map[sim.Kind]sim.KindReport{}
	for _, k := range rep.Kinds {
		kinds[k.Kind] = k
		if k.UnexpectedExpired != 0 {
			t.Errorf("%s farmers: %d contracts expired unexpectedly, want 0", k.Kind, k.UnexpectedExpired)
		}
	}
	if len(kinds) != len(sim.Kinds) {
		t.Errorf("farmer kinds in the report: %d, want all %d", len(kinds), len(sim.Kinds))
	}
	if h := kinds[sim.Honest]; h.Accepted == 0 || h.Rejected != 0 || h.Expired != 0 || rep.HonestExpired != 0 {
		t.Errorf("honest farmers: %d accepted, %d rejected, %d expired; want some accepted, none rejected or expired",
			h.Accepted, h.Rejected, h.Expired)
	}
	if c := kinds[sim.Cheater]; c.Rejected == 0 || c.Accepted != 0 || rep.CheaterAccepted != 0 {
		t.Errorf("cheaters: %d made-up proofs rejected, %d accepted; want every one rejected", c.Rejected, c.Accepted)
	}
	if l := kinds[sim.Late]; l.LateSent == 0 || l.LateExpired == 0 || l.LateAccepted != 0 {
		t.Errorf("late farmers: %d answers sent after the due time, %d answered \"contract expired\", %d accepted; want some, some, none",
			l.LateSent, l.LateExpired, l.LateAccepted)
	}
	if f := kinds[sim.Flaky]; f.Outages == 0 || f.Accepted == 0 {
		t.Errorf("flaky farmers: %d outages, %d proofs accepted; want both", f.Outages, f.Accepted)
	}
	if len(rep.Detection) != 1 {
		t.Fatalf("%d lossy detection rows, want 1", len(rep.Detection))
	}
	// Over 40 or more contracts' first challenges at f = 0.2, k = 4, the
	// observed rate is within 0.25 of 1-(1-f)^k but by chance (p ≈ 1e-3 at
	// 40; a run sees about 100).
	if d := rep.Detection[0]; d.Missed != 0 || d.Contracts < 40 || d.Observed < d.Theory-0.25 || d.Observed > d.Theory+0.25 {
		t.Errorf("lossy farmers: detection %.2f over %d contracts (theory %.2f), %d lost leaves accepted; want within 0.25 over 40 or more, none accepted",
			d.Observed, d.Contracts, d.Theory, d.Missed)
	}
	if u := rep.Uploads; u.Started != 2 || u.Done != 2 {
		t.Errorf("uploads: %d started, %d completed, want 2 and 2", u.Started, u.Done)
		for _, r := range rep.UploadList {
			t.Logf("upload %s of %d bytes: %s at status %d %s", r.QuoteID, r.Size, r.Outcome, r.Status, r.Error)
		}
	}
	if l := rep.Ledger; !rep.LedgerOK || l.Acked == 0 || l.Heartbeats != l.Acked+l.Inferred || l.Uploads != 2 {
		t.Errorf("ledger: ok %v, %d answers acknowledged, %d inferred, %d heartbeats, %d uploads checked; differences %v",
			rep.LedgerOK, l.Acked, l.Inferred, l.Heartbeats, l.Uploads, l.Differences)
	}
	if len(rep.Anomalies) != 0 {
		t.Errorf("anomalies: %v", rep.Anomalies)
	}
	for _, route := range []string{"POST /answer/{token}", "POST /challenge/{token}", "GET /chunk/{token}/{size}",
		"POST /getQuote", "POST /upload", "GET /getStatus", "GET /getLink", "GET /ipfs/{cid}"} {
		if !slices.ContainsFunc(rep.Routes, func(r sim.RouteReport) bool { return r.Route == route && r.Requests > 0 && r.P99 > 0 }) {
			t.Errorf("no requests or latency for %s", route)
		}
	}
	if rep.IntervalMS != 2000 {
		t.Errorf("interval %.0fms in the report, want --interval's 2000", rep.IntervalMS)
	}
	if len(rep.Series) < 10 {
		t.Errorf("%d points of the time series over 20s, want one a second", len(rep.Series))
	}
	if !strings.Contains(stderr.String(), "req/s") {
		t.Errorf("no progress line on stderr: %q", lastLines(stderr.String(), 3))
	}

	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if n := strings.Count(html, "<svg"); n < 4 {
		t.Errorf("HTML page: %d charts, want throughput, latency, live contracts and farmers online", n)
	}
	for _, external := range []string{"<script", "<link", " src=", "url("} {
		if strings.Contains(html, external) {
			t.Errorf("HTML page has %q: want a page that loads nothing", external)
		}
	}
}

// TestSimRestart runs `sluice sim` as a process with a short restart
// scenario from a file: it starts its own node (sluice serve), kills it
// with SIGKILL midway and starts it again; the ledger must still match.
func TestSimRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	scenario := filepath.Join(dir, "quick-restart.json")
	if err := os.WriteFile(scenario, []byte(`{
		"duration": "8s",
		"interval_hint": "1s",
		"upload_chunk_size": "64KiB",
		"farmers": [{"kind": "honest", "count": 4, "size": "256KiB"}],
		"uploaders": [{"count": 1, "sizes": ["100KiB"]}],
		"restart": {"at": "3s", "down": "2500ms"}
	}`), 0o600); err != nil {
		t.Fatal(err)
	}
	nodeLog := filepath.Join(dir, "node.log")
	stdout, stderr, code := simProcess(t, "--json", "--node-log", nodeLog, scenario)
	var rep sim.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, stdout is not a JSON report (%v):\n%s\nstderr:\n%s", code, err, stdout.String(), stderr.String())
	}
	if code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, lastLines(stderr.String(), 5))
	}
	if rep.Scenario != "quick-restart" {
		t.Errorf("scenario %q, want quick-restart (the file's name)", rep.Scenario)
	}
	if len(rep.Restarts) != 1 || rep.Restarts[0].Err != "" {
		t.Errorf("restarts %+v, want one without error", rep.Restarts)
	}
	if !rep.LedgerOK || rep.Ledger.Acked == 0 || rep.HonestExpired != 0 || rep.Uploads.Done != 1 || rep.Ledger.Uploads != 1 {
		t.Errorf("ledger ok %v (%v), %d answers acknowledged, %d honest contracts expired, %d of 1 uploads done and %d checked",
			rep.LedgerOK, rep.Ledger.Differences, rep.Ledger.Acked, rep.HonestExpired, rep.Uploads.Done, rep.Ledger.Uploads)
	}
	if b, _ := os.ReadFile(nodeLog); strings.Count(string(b), `"node.ready"`) != 2 {
		t.Errorf("node log: %d node.ready lines, want 2 (start and restart)", strings.Count(string(b), `"node.ready"`))
	}
}

// TestSimUsage: bad flags and scenarios are refused before anything runs,
// with exit status 2 and a message naming the problem.
func TestSimUsage(t *testing.T) {
	t.Setenv("SLUICE_SIM_PROGRESS_EVERY", "")
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--duration", "soon"}, "", `invalid value "soon" for flag -duration`},
		{[]string{"--bogus"}, "", "flag provided but not defined: -bogus"},
		{[]string{"nosuch"}, "", `no built-in scenario "nosuch" (have load, restart, smoke)`},
		{[]string{"smoke", "load"}, "", "one scenario at a time"},
		{[]string{"smoke", "--scenario", "load"}, "", "give one"},
		{[]string{"--interval", "10ms"}, "", "--interval 10ms: want 0 or at least 100ms"},
		{[]string{"--duration", "-1s"}, "", "--duration -1s"},
		{[]string{"--chain-rpc", "http://127.0.0.1:8545"}, "", "--chain-rpc and --pay-keys go together"},
		{[]string{"restart", "--node", "http://127.0.0.1:8000"}, "", "drop --node"},
		{[]string{"restart", "--duration", "5s"}, "", "restart.at must fall within the duration"},
		{[]string{filepath.Join(t.TempDir(), "missing.json")}, "", "no such file"},
		{[]string{"--node", "garbage"}, "", `--node "garbage": want the node's base URL`},
		{[]string{"--node", "ftp://127.0.0.1:8000"}, "", "want the node's base URL"},
		{nil, "SLUICE_SIM_PROGRESS_EVERY=often", `SLUICE_SIM_PROGRESS_EVERY="often"`},
	} {
		if c.env != "" {
			name, value, _ := strings.Cut(c.env, "=")
			t.Setenv(name, value)
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"sim"}, c.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "sim: sim:") {
			t.Errorf("sluice sim %s: exit %d, stderr %q; want 2 and a message with %q", strings.Join(c.args, " "), code, stderr.String(), c.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("sluice sim %s: wrote %q to stdout", strings.Join(c.args, " "), stdout.String())
		}
	}
}

// simProcess runs the built binary's `sluice sim` with args (bounded to two
// minutes) and returns its output and exit status.
func simProcess(t *testing.T, args ...string) (stdout, stderr *bytes.Buffer, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"sim"}, args...)...)
	cmd.Env = append(os.Environ(), "SLUICE_DATABASE_URL=") // a node it runs uses the embedded store
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("sluice sim: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("sluice sim %s: still running after two minutes\n%s", strings.Join(args, " "), lastLines(stderr.String(), 5))
	}
	return stdout, stderr, cmd.ProcessState.ExitCode()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Against a node started with the plain run command (five tokens per IP
// address), sluice sim says how to start the node instead of reporting
// the refused farmers as the node's misbehaviour.
func TestSimAgainstDefaultNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	t.Parallel()
	p := startServe(t, []string{"SLUICE_DATA_DIR=" + t.TempDir(), "SLUICE_DATABASE_URL="})
	node := strings.TrimSuffix(p.api, "/api/downstream/v1")
	stdout, stderr, code := simProcess(t, "smoke", "--node", node, "--duration", "2s", "--json")
	var rep sim.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, stdout is not a JSON report (%v):\n%s", code, err, stderr.String())
	}
	if code != 1 || !strings.Contains(stderr.String(), "--max-tokens-per-ip 0") {
		t.Errorf("exit %d, stderr %q; want 1 and how to start the node", code, lastLines(stderr.String(), 2))
	}
	if rep.Refused != 21 || len(rep.Anomalies) != 0 {
		t.Errorf("%d farmers refused, anomalies %q; want 21 (26 less the 5 allowed) and none", rep.Refused, rep.Anomalies)
	}
}

// TestSimNodeDiesMidway: a node killed during a run is reported as gone,
// with a non-zero exit, and not as a ledger full of differences (which
// would read as lost data).
func TestSimNodeDiesMidway(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	t.Parallel()
	p := startServe(t, []string{"SLUICE_DATA_DIR=" + t.TempDir(), "SLUICE_DATABASE_URL="},
		"--challenge-interval", "2s", "--max-tokens-per-ip", "0")
	node := strings.TrimSuffix(p.api, "/api/downstream/v1")
	scenario := filepath.Join(t.TempDir(), "short.json")
	os.WriteFile(scenario, []byte(`{"duration":"6s","interval_hint":"2s","request_timeout":"1s","farmers":[{"kind":"honest","count":3,"size":"64KiB"}]}`), 0o600)
	go func() {
		// Kill the node once it has accepted a proof (bounded wait).
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			res, err := http.Get(node + "/metrics")
			if err == nil {
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if strings.Contains(string(body), `sluice_proofs_total{result="accepted"}`) {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
	}()
	_, stderr, code := simProcess(t, scenario, "--node", node)
	if code == 0 || !strings.Contains(stderr.String(), "the node did not answer at the end of the run") {
		t.Fatalf("exit %d, want non-zero with the node named as gone; stderr:\n%s", code, lastLines(stderr.String(), 5))
	}
	if strings.Contains(stderr.String(), "differences") {
		t.Fatalf("the node's death was reported as ledger differences:\n%s", lastLines(stderr.String(), 5))
	}
}
