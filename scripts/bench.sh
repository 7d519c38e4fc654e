#!/usr/bin/env bash
# make bench: runs every benchmark the issues ask for and prints each
# figure next to the baseline measured in the same run.
#
# Postgres figures need a database: SLUICE_TEST_POSTGRES (default: the
# local test database). BENCH_CONTRACTS overrides the engine sizes;
# BENCH_ANSWERS the single-proof answers of the answer benchmark;
# BENCH_FLEET_CONTRACTS and BENCH_FLEET_FARMERS the fleet (1M from 100k).
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICE_TEST_POSTGRES="${SLUICE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
sizes="${BENCH_CONTRACTS:-100000 1000000}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# metric FILE BENCH-REGEX UNIT: the value printed before UNIT on the first
# line of FILE whose benchmark name matches.
metric() {
  awk -v re="$2" -v unit="$3" '$1 ~ re { for (i = 2; i < NF; i++) if ($(i+1) == unit) { print $i; exit } }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== proofs (proof/)"
go test -run '^$' -bench 'Prove$|Verify$|VerifyJSON$|SHA256Baseline$' -benchmem -count 1 ./proof/ | tee "$out/proof.txt"
prove=$(metric "$out/proof.txt" '^BenchmarkProve' ns/op)
verify=$(metric "$out/proof.txt" '^BenchmarkVerify-' ns/op)
verifyjson=$(metric "$out/proof.txt" '^BenchmarkVerifyJSON' ns/op)
sha=$(metric "$out/proof.txt" '^BenchmarkSHA256Baseline' ns/op)

echo "== snapshot writer (persistence/postgres)"
pg_ok=1
go test -run '^$' -bench 'SnapshotWriter|CopyFromBaseline' -benchtime 1x -count 1 ./persistence/postgres/ | tee "$out/pg.txt" || pg_ok=0
writer1=$(metric "$out/pg.txt" 'per_commit=1/flushers=2' rows/s)
writer100=$(metric "$out/pg.txt" 'per_commit=100/flushers=2' rows/s)
copyfrom=$(metric "$out/pg.txt" 'CopyFromBaseline' rows/s)

echo "== engine at scale (cmd/sluice-bench, one process per size)"
go build -o "$out/sluice-bench" ./cmd/sluice-bench
: > "$out/engine.jsonl"
for n in $sizes; do
  "$out/sluice-bench" engine --contracts "$n" --database-url "$SLUICE_TEST_POSTGRES" | tee -a "$out/engine.jsonl"
done

echo "== status list under answer load (cmd/sluice-bench status)"
"$out/sluice-bench" status --farmers 100000 | tee "$out/status.json"

echo "== uploads (cmd/sluice-bench uploads)"
"$out/sluice-bench" uploads | tee "$out/uploads.json"

echo "== farmer answers through the real binary (cmd/sluice-bench answer), both stores"
go build -o "$out/sluice" ./cmd/sluice
: > "$out/answer.jsonl"
for store in postgres embedded; do
  db=(); [ "$store" = postgres ] && db=(--database-url "$SLUICE_TEST_POSTGRES")
  "$out/sluice-bench" answer "${db[@]}" --answers "${BENCH_ANSWERS:-30000}" | tee -a "$out/answer.jsonl" ||
    echo "answer benchmark on $store failed"
done

echo "== a fleet of virtual farmers on the real binary (cmd/sluice-bench fleet), both stores"
: > "$out/fleet.jsonl"
for store in postgres embedded; do
  db=(); [ "$store" = postgres ] && db=(--database-url "$SLUICE_TEST_POSTGRES")
  "$out/sluice-bench" fleet "${db[@]}" --contracts "${BENCH_FLEET_CONTRACTS:-1000000}" \
    --farmers "${BENCH_FLEET_FARMERS:-100000}" | tee -a "$out/fleet.jsonl" || echo "fleet benchmark on $store failed"
done

echo "== signature verification (chain/)"
go test -run '^$' -bench 'Verify(Ethereum|Bitcoin)' -count 1 ./chain/ | tee "$out/sig.txt" || true

echo
echo "== summary (same machine, same run)"
printf '%-52s %14s %14s %8s\n' "figure" "value" "baseline" "ratio"
printf '%-52s %11s ns %11s ns %8s\n' "prove one proof (1 MiB chunk, k=4) vs SHA-256" "$prove" "$sha" "$(ratio "$prove" "$sha")"
printf '%-52s %11s ns %11s ns %8s\n' "verify one decoded proof vs SHA-256 of its bytes" "$verify" "$sha" "$(ratio "$verify" "$sha")"
printf '%-52s %11s ns %11s ns %8s\n' "decode+verify a JSON proof vs SHA-256" "$verifyjson" "$sha" "$(ratio "$verifyjson" "$sha")"
if [ "$pg_ok" = 1 ] && [ -n "$copyfrom" ]; then
  printf '%-52s %9s r/s %9s r/s %8s\n' "snapshot writer, 256 callers x 1 row vs CopyFrom" "${writer1%.*}" "${copyfrom%.*}" "$(ratio "$writer1" "$copyfrom")"
  printf '%-52s %9s r/s %9s r/s %8s\n' "snapshot writer, 256 callers x 100 rows vs CopyFrom" "${writer100%.*}" "${copyfrom%.*}" "$(ratio "$writer100" "$copyfrom")"
fi
j() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/" "$out/status.json"; }
printf '%-52s %10.3f ms %10.3f ms %8.2f\n' "status list by/d/uptime/25, 100k farmers: p50" "$(j status_p50_ms)" "$(j baseline_p50_ms)" "$(ratio "$(j status_p50_ms)" "$(j baseline_p50_ms)")"
printf '%-52s %10.3f ms %10.3f ms %8.2f\n' "  p99 (baseline: fixed 25-row body, same listener)" "$(j status_p99_ms)" "$(j baseline_p99_ms)" "$(j p99_ratio)"
k() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/" "$out/uploads.json"; }
printf '%-52s %9.0f /s %9.0f /s %8.2f\n' "quotes created (built-in type) vs trivial handler" "$(k quotes_per_s)" "$(k baseline_per_s)" "$(k quote_ratio)"
printf '%-52s %7.0f MB/s %7.0f MB/s %8.2f\n' "256 MiB upload vs writing it to disk" "$(k upload_mb_per_s)" "$(k disk_write_mb_per_s)" "$(k upload_ratio)"
printf '%-52s %9.1f MiB %9.1f MiB\n' "  Go heap: before the upload, peak during it" "$(k heap_before_upload_mib)" "$(k peak_heap_during_upload_mib)"
eth=$(metric "$out/sig.txt" '^BenchmarkVerifyEthereum' verifications/s)
btc=$(metric "$out/sig.txt" '^BenchmarkVerifyBitcoin' verifications/s)
[ -n "$eth" ] && printf '%-52s %10.0f /s\n' "signature verifications, Ethereum (EIP-191)" "$eth"
[ -n "$btc" ] && printf '%-52s %10.0f /s\n' "signature verifications, Bitcoin signed message" "$btc"
while read -r line; do
  n=$(echo "$line" | sed -E 's/.*"contracts":([0-9]+).*/\1/')
  rss=$(echo "$line" | sed -E 's/.*"rss_mib":([0-9.]+).*/\1/')
  per=$(echo "$line" | sed -E 's/.*"rss_bytes_per_contract":([0-9.]+).*/\1/')
  rearm=$(echo "$line" | sed -E 's/.*"rearm_seconds":([0-9.]+).*/\1/')
  printf '%-52s %9.0f MiB %11.0f B %8s\n' "resident memory, $n live contracts (per contract)" "$rss" "$per" ""
  printf '%-52s %12.1f s %14s %8s\n' "start-up: load and re-arm $n contracts (Postgres)" "$rearm" "" ""
done < "$out/engine.jsonl"
# jv FILE STORE KEY: a number from the JSON line of that store.
jv() { grep "\"store\":\"$2\"" "$1" | head -1 | sed -nE "s/.*\"$3\":([0-9.e+-]+).*/\1/p"; }
for store in postgres embedded; do
  grep -q "\"store\":\"$store\"" "$out/answer.jsonl" || continue
  a="$out/answer.jsonl"
  raw="pgx CopyFrom"; [ "$store" = embedded ] && raw="bbolt batch put"
  printf '%-52s %9.0f /s %9.0f /s %8.2f\n' "single-proof /answer ($store) vs trivial handler" \
    "$(jv "$a" $store single_per_s)" "$(jv "$a" $store single_baseline_per_s)" "$(jv "$a" $store single_ratio)"
  printf '%-52s %10.0f us %10.0f us %8s\n' "  CPU per answer: node vs trivial handler" \
    "$(jv "$a" $store single_node_cpu_us)" "$(jv "$a" $store single_baseline_cpu_us)" "$(ratio "$(jv "$a" $store single_node_cpu_us)" "$(jv "$a" $store single_baseline_cpu_us)")"
  printf '%-52s %9.0f /s %9.0f /s %8.2f\n' "  batches of 100: proofs vs $raw rows" \
    "$(jv "$a" $store batch_proofs_per_s)" "$(jv "$a" $store batch_baseline_rows_per_s)" "$(jv "$a" $store batch_ratio)"
  # What no node could beat here: this machine's cores doing nothing but
  # decode+verify (the Go benchmark above) and the raw write's own CPU per
  # row (client and database), against the same baseline.
  rawcpu="$(jv "$a" $store batch_baseline_cpu_us_per_row)"
  if [ -n "$verifyjson" ] && [ -n "$rawcpu" ]; then
    ceil=$(awk -v c="$(nproc)" -v ns="$verifyjson" -v us="$rawcpu" 'BEGIN { printf "%.0f", c * 1e6 / (ns / 1000 + us) }')
    printf '%-52s %9.0f /s %9.0f /s %8.2f\n' "  ceiling: $(nproc) cores doing only decode+verify+raw write" \
      "$ceil" "$(jv "$a" $store batch_baseline_rows_per_s)" "$(ratio "$ceil" "$(jv "$a" $store batch_baseline_rows_per_s)")"
    printf '%-52s %10.1f us %10.1f us\n' "    CPU per row: raw write; per proof: decode+verify" "$rawcpu" "$(awk -v ns="$verifyjson" 'BEGIN { print ns / 1000 }')"
  fi
  printf '%-52s %10.1f ms %10.1f ms %8s\n' "  p99 /answer at $(printf %.0f "$(jv "$a" $store latency_rate_per_s)")/s (half max) vs trivial handler" \
    "$(jv "$a" $store latency_p99_ms)" "$(jv "$a" $store latency_baseline_p99_ms)" "$(ratio "$(jv "$a" $store latency_p99_ms)" "$(jv "$a" $store latency_baseline_p99_ms)")"
  printf '%-52s %12s %14s\n' "  store commits over 50 ms in that phase" \
    "$(jv "$a" $store latency_phase_commits_over_50ms) of $(jv "$a" $store latency_phase_commits)" ""
  printf '%-52s %12s %14s\n' "  acknowledged answers lost after SIGKILL" "$(jv "$a" $store acks_lost) of $(jv "$a" $store acks_checked)" ""
done
for store in postgres embedded; do
  grep -q "\"store\":\"$store\"" "$out/fleet.jsonl" || continue
  f="$out/fleet.jsonl"
  n="$(jv "$f" $store contracts)"; fa="$(jv "$f" $store farmers)"
  echo "fleet over HTTP: $n live contracts from $fa farmers ($store)"
  printf '%-52s %9.0f MiB %11.0f B %8s\n' "  VmRSS of the node (per contract)" \
    "$(jv "$f" $store rss_mib)" "$(jv "$f" $store rss_bytes_per_contract)" ""
  printf '%-52s %9.0f MiB %14s %8s\n' "  of it anonymous (RssAnon: not mapped files)" "$(jv "$f" $store rss_anon_mib)" "" ""
  printf '%-52s %9.0f MiB %11.0f B %8s\n' "  after SIGKILL and restart: VmRSS" \
    "$(jv "$f" $store rss_restarted_mib)" "$(jv "$f" $store rss_restarted_bytes_per_contract)" ""
  printf '%-52s %9.0f MiB %11.0f B %8s\n' "  after SIGKILL and restart: RssAnon" \
    "$(jv "$f" $store rss_anon_restarted_mib)" "$(jv "$f" $store rss_anon_restarted_bytes_per_contract)" ""
  printf '%-52s %12.1f s %14s %8s\n' "  SIGKILL to /readyz ready" "$(jv "$f" $store kill_to_ready_seconds)" "" ""
  printf '%-52s %12.1f s %14s %8s\n' "  SIGKILL to every contract actor started (armed)" "$(jv "$f" $store kill_to_armed_seconds)" "" ""
done
