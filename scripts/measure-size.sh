#!/usr/bin/env bash
# Measures what the exporter costs for a simulated organisation of a given size: series served,
# resident memory (VmRSS and its peak VmHWM from /proc/<pid>/status) and env0 requests per minute.
# Runs `env0-exporter simulate` and the exporter against it as two processes on loopback, so the
# memory is the exporter's alone. Not part of the test suite; the README's sizing note comes from it.
#
# Usage: scripts/measure-size.sh ENVIRONMENTS [SAMPLES]
#   ENVIRONMENTS  simulated environments (e.g. 150, 2000)
#   SAMPLES       one-minute samples after the start-up backfill (default 3)
# Env: ENV0_EXPORTER_BIN (default target/dist/env0-exporter, the binary that ships), MAX_RPM (default 900: the
#      backfill goes faster than at the default 500; steady polls stay below either)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

envs="${1:?usage: scripts/measure-size.sh ENVIRONMENTS [SAMPLES]}"
samples="${2:-3}"
bin="${ENV0_EXPORTER_BIN:-target/dist/env0-exporter}"
[[ -x "${bin}" ]] || { echo "measure-size: ${bin} missing: cargo build --profile dist --features jemalloc --locked" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port="$(free_port)" exp_port="$(free_port)"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "${p}" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "${work}"; }
trap cleanup EXIT

"${bin}" simulate --sim-listen-address "127.0.0.1:${sim_port}" --sim-environments "${envs}" \
  >"${work}/simulate.log" 2>&1 &
pids+=($!)
sleep 1
"${bin}" --api-endpoint "http://127.0.0.1:${sim_port}" --api-key demo-key --api-secret demo-secret \
  --listen-address "127.0.0.1:${exp_port}" --max-requests-per-minute "${MAX_RPM:-900}" \
  >"${work}/exporter.log" 2>&1 &
exporter=$!
pids+=("${exporter}")

scrape() { curl -fsS "http://127.0.0.1:${exp_port}/metrics" 2>/dev/null || true; }
value() { awk -v m="$1" '$1 == m {print $2}'; }
start=${SECONDS}
until [[ "$(scrape | value env0_exporter_backfill_pending_environments)" == 0 \
         && "$(scrape | value env0_up)" == 1 ]]; do
  (( SECONDS - start < 1200 )) || { echo "measure-size: no finished backfill after 20 min" >&2; exit 1; }
  sleep 5
done
echo "environments=${envs}: start-up backfill done after $((SECONDS - start)) s"
requests() { scrape | awk '/^env0_exporter_api_requests_total/ {s += $2} END {print s + 0}'; }
before="$(requests)"
for i in $(seq 1 "${samples}"); do
  sleep 60
  body="$(scrape)"
  now="$(requests)"
  printf 'sample %d: series=%d body=%d bytes tracked_deployments=%s VmRSS=%s VmHWM=%s requests_last_minute=%d\n' \
    "${i}" "$(grep -vc '^#' <<<"${body}")" "$(wc -c <<<"${body}")" \
    "$(value env0_exporter_tracked_deployments <<<"${body}")" \
    "$(awk '/^VmRSS/ {print $2 $3}' "/proc/${exporter}/status")" \
    "$(awk '/^VmHWM/ {print $2 $3}' "/proc/${exporter}/status")" "$((now - before))"
  before="${now}"
done
