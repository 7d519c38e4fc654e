// Package sim is Sluice's load simulator: it drives a running node over
// real HTTP with many virtual farmers and uploaders, measures the node, and
// checks at the end that the node's books agree with what it acknowledged.
//
// The pieces:
//
//   - Scenario is what to simulate, read from JSON (LoadScenario, or
//     BuiltinScenario for the files under scenarios/): how long, which
//     farmers (honest, late, lossy, flaky, cheater) in what numbers and
//     sizes, which uploaders, and optionally a node restart midway.
//   - Run plays a scenario against a node and returns a Report. Every
//     virtual farmer is one goroutine running a small state machine over its
//     contracts; it speaks through farmer.Client over one shared, pooled
//     *http.Transport, proves prototype chunks from proof.NewSeeded in memory,
//     and batches its /answer and /challenge calls per due time, as the
//     original downstream-farmer did. Uploaders go quote → (approve) → upload
//     → status → link → fetch, on the built-in storage type.
//   - Report is the result: requests and latency by route, proofs by farmer
//     kind, contracts expired, uploads, errors by kind, the lossy farmers'
//     detection rate next to theory, time series, and the ledger check. It
//     renders as a text table, JSON, or one self-contained HTML page with SVG
//     charts.
//   - Process runs a `sluice serve` child process and restarts it with
//     SIGKILL, for the restart scenario (the CLI or a test owns it and passes
//     its RestartHook as Options.Restart).
//
// The ledger check is the simulator's correctness test of the node: it
// keeps its own record of every answer the node acknowledged and every
// upload that reached status 400, and compares it with the status API and
// getStatus at the end, including across a SIGKILL restart. The rules are
// on Ledger.
package sim
