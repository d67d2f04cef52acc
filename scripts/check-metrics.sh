#!/usr/bin/env bash
# Lints the exporter's /metrics output with the real promtool: a `simulate` process serves the
# simulated env0 API on loopback, `once` polls it and prints the metrics, promtool checks them.
# Also scrapes a running `demo` over HTTP, in both formats, lints its Prometheus text, and reads
# its OpenMetrics text, exemplars included, with the reference parser (Python prometheus_client,
# pinned in the venv scripts/install-tools.sh fills). The end-to-end test
# `signals::openmetrics_exemplars_name_simulator_runs_with_their_values_and_times` proves in Rust
# what the exemplars say; this step proves the reference parser accepts them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${1:-target/release/env0-exporter}"
promtool=".cache/tools/bin/promtool"
py=".cache/venv/bin/python"
[[ -x "${bin}" ]] || { echo "check-metrics: ${bin} not built (cargo build --release --locked)" >&2; exit 1; }
[[ -x "${promtool}" ]] || { echo "check-metrics: ${promtool} missing (run scripts/install-tools.sh)" >&2; exit 1; }
[[ -x "${py}" ]] || { echo "check-metrics: ${py} missing (run scripts/install-tools.sh)" >&2; exit 1; }
"${py}" -c 'import prometheus_client' \
  || { echo "check-metrics: the venv lacks prometheus-client (run scripts/install-tools.sh)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "check-metrics: nothing listens on port $1" >&2; return 1
}

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "${p}" 2>/dev/null || true; done; rm -rf "${work}"; }
trap cleanup EXIT

sim_port="$(free_port)"
"${bin}" simulate --sim-listen-address "127.0.0.1:${sim_port}" >"${work}/sim.log" 2>&1 &
pids+=($!)
wait_port "${sim_port}"

"${bin}" once --api-endpoint "http://127.0.0.1:${sim_port}/" --api-key demo-key --api-secret demo-secret \
  >"${work}/once.prom" 2>"${work}/once.log" || { cat "${work}/once.log" >&2; echo "check-metrics: once failed" >&2; exit 1; }
grep -qx 'env0_up 1' "${work}/once.prom" || { echo "check-metrics: once did not report env0_up 1" >&2; exit 1; }
echo "promtool check metrics (once: $(grep -vc '^#' "${work}/once.prom") samples)"
"${promtool}" check metrics <"${work}/once.prom"

demo_port="$(free_port)"
# A lively organisation (a run per environment a minute, 20x faster runs), so that runs finish
# after the first poll and the histograms carry exemplars within seconds.
"${bin}" demo --listen-address "127.0.0.1:${demo_port}" --poll-interval 5s --lookback 1h \
  --sim-mean-deployment-interval 1m --sim-time-scale 0.05 >"${work}/demo.out" 2>"${work}/demo.log" &
pids+=($!)
wait_port "${demo_port}"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${demo_port}/metrics" >"${work}/demo.prom" && grep -qx 'env0_up 1' "${work}/demo.prom" && break
  sleep 0.3
done
grep -qx 'env0_up 1' "${work}/demo.prom" || { echo "check-metrics: demo never reported env0_up 1" >&2; exit 1; }
ct="$(curl -fsS -o /dev/null -w '%{content_type}' "http://127.0.0.1:${demo_port}/metrics")"
[[ "${ct}" == "text/plain; version=0.0.4; charset=utf-8" ]] || { echo "check-metrics: content type ${ct}" >&2; exit 1; }
ct="$(curl -fsS -o "${work}/demo.om" -w '%{content_type}' -H 'Accept: application/openmetrics-text;version=1.0.0' "http://127.0.0.1:${demo_port}/metrics")"
[[ "${ct}" == "application/openmetrics-text; version=1.0.0; charset=utf-8" ]] || { echo "check-metrics: OpenMetrics content type ${ct}" >&2; exit 1; }
[[ "$(tail -n1 "${work}/demo.om")" == "# EOF" ]] || { echo "check-metrics: OpenMetrics output does not end in # EOF" >&2; exit 1; }
echo "promtool check metrics (demo scrape over HTTP: $(grep -vc '^#' "${work}/demo.prom") samples)"
"${promtool}" check metrics <"${work}/demo.prom"

# The reference OpenMetrics parser on a scrape whose two histograms carry exemplars.
om_accept='application/openmetrics-text;version=1.0.0'
for _ in $(seq 1 200); do
  curl -fsS -H "Accept: ${om_accept}" "http://127.0.0.1:${demo_port}/metrics" >"${work}/demo.om"
  grep -q '^env0_deployment_duration_seconds_bucket{.* # {' "${work}/demo.om" \
    && grep -q '^env0_deployment_queue_duration_seconds_bucket{.* # {' "${work}/demo.om" && break
  sleep 0.3
done
"${py}" tests/tooling/openmetrics_exemplars.py <"${work}/demo.om" >"${work}/exemplars.jsonl" \
  || { echo "check-metrics: the reference OpenMetrics parser rejected the demo's output" >&2; exit 1; }
"${py}" - "${work}/exemplars.jsonl" <<'PY' || { echo "check-metrics: exemplars missing from the reference parse" >&2; exit 1; }
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
summary, exemplars = lines[-1], lines[:-1]
families = {e["family"] for e in exemplars}
want = {"env0_deployment_duration_seconds", "env0_deployment_queue_duration_seconds"}
print(f"reference OpenMetrics parser: {summary['families']} families, {summary['samples']} samples, "
      f"{len(exemplars)} exemplars on {sorted(families)}")
assert summary["families"] > 20, summary
assert families == want, families
assert all(e["exemplar"]["labels"].keys() == {"deployment", "env", "project"} for e in exemplars), exemplars
PY
echo "check-metrics: ok"
