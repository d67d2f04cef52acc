#!/usr/bin/env bash
# The scale scenario end to end over loopback: a large simulated organisation (10,000
# environments, 500 projects, a run every 72 minutes per environment by default), and prints one
# table of what polling and serving it cost. A long run (about 20 minutes with the real
# processes): not part of scripts/test.sh. The README's "Scale" section comes from it.
#
#  1. Simulated time (examples/scale.rs, in-process, manual clock 60 s per poll): the backfill
#     against the time the budget makes the minimum; steady polls against the floor
#     ceil(E/100) + 2 + environments whose latest run changed (counted from the simulator's state);
#     every 60 s window of the simulator's request log within the budget, no 429; series per
#     family with the default labels and with --duration-histogram-labels cut.
#  2. Real processes (the binary that ships: the dist profile, or SCALE_PROFILE): `env0-exporter simulate` and the exporter against it; after
#     the backfill: bytes per scrape (Prometheus text 0.0.4 and OpenMetrics, raw and gzip),
#     series per family (top 10), scrape latency under 50 concurrent scrapers for 30 s with wrk
#     (with and without gzip), peak and current RSS of the exporter; with --soak, RSS every minute.
#
# Usage: scripts/scale.sh [--environments N] [--projects N] [--budget N] [--real-budget N]
#                         [--polls N] [--skip-real] [--soak DURATION]
#   --environments N   simulated environments (default 10000)
#   --projects N       simulated projects (default 500)
#   --budget N         the exporter's --max-requests-per-minute in the simulated-time part
#                      (default 500, the exporter's default)
#   --real-budget N    the same for the real processes (default: --budget); 1000 makes the
#                      backfill of 10,000 environments about 10 minutes instead of about 21
#   --polls N          steady polls per simulated-time scenario (default 10)
#   --skip-real        only the simulated-time part
#   --skip-simulated   only the real processes
#   --soak DURATION    after the measures, keep both processes running DURATION (e.g. 2h, 30m)
#                      and sample the exporter's RSS every minute
# Env: WRK_DIR (default .cache/tools/wrk): where wrk is unpacked from Debian's package if missing;
#      SCALE_CONNECTIONS (50), SCALE_WRK_DURATION (30s); SCALE_PROFILE (dist): the Cargo
#      profile of the exporter of part 2 (release builds in a fraction of dist's time);
#      SCALE_NO_BUILD=1 uses the binaries already in target/$SCALE_PROFILE (the exporter) and
#      target/release (the scale example) instead of building them.
#
# Sizes: the large preset holds about 18.5 deployments per environment in the 24 h window
# (184,579 for 10,000 environments), so --environments 10840 is about 200,000 deployments and
# --environments 540 --projects 27 about 10,000.
#
# wrk comes from Debian without root: `apt-get download wrk libluajit-5.1-2 libluajit-5.1-common`,
# `dpkg -x` each into $WRK_DIR, run with LD_LIBRARY_PATH=$WRK_DIR/usr/lib/x86_64-linux-gnu (wrk's
# other dependencies, libc6 and libssl3, are the system's).
#
# The organisation is the simulator's `--sim-scale large` preset (long approval waits, plans stuck
# beside later runs) with the size flags above; part 1 runs twice: with those long-unfinished
# runs, and without them (--sim-stuck-share 0 --sim-long-approval-share 0), then once more without
# them and with webhooks live (--webhooks: the simulator delivers every change, signed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$(pwd)"

environments=10000 projects=500 interval=72m budget=500 real_budget="" polls=10 skip_real=0 skip_simulated=0 soak=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --environments) environments="$2"; shift 2 ;;
    --projects) projects="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --real-budget) real_budget="$2"; shift 2 ;;
    --polls) polls="$2"; shift 2 ;;
    --skip-real) skip_real=1; shift ;;
    --skip-simulated) skip_simulated=1; shift ;;
    --soak) soak="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
real_budget="${real_budget:-${budget}}"
connections="${SCALE_CONNECTIONS:-50}"
wrk_duration="${SCALE_WRK_DURATION:-30s}"
profile="${SCALE_PROFILE:-dist}"
wrk_dir="${WRK_DIR:-${repo}/.cache/tools/wrk}"
SIM_PRESET=(--sim-scale large)
# SCALE_REAL_SIM_FLAGS: more flags for the simulator of part 2, e.g. "--sim-stuck-share 0
# --sim-long-approval-share 0" for an organisation without long-unfinished runs.
read -r -a real_sim_extra <<<"${SCALE_REAL_SIM_FLAGS:-}"
sim_flags=(--sim-environments "${environments}" --sim-projects "${projects}"
  --sim-mean-deployment-interval "${interval}" "${SIM_PRESET[@]}" "${real_sim_extra[@]}")

log() { echo "scale: $*" >&2; }
die() { echo "scale: ERROR: $*" >&2; exit 1; }

# install_wrk: wrk into $wrk_dir from Debian's packages (never installed system-wide).
install_wrk() {
  local libs="${wrk_dir}/usr/lib/x86_64-linux-gnu"
  if [[ -x "${wrk_dir}/usr/bin/wrk" ]] \
     && { LD_LIBRARY_PATH="${libs}" "${wrk_dir}/usr/bin/wrk" --version 2>&1 || true; } | grep -q '^wrk'; then
    return
  fi
  command -v apt-get >/dev/null || die "apt-get not found: wrk comes from Debian's wrk package"
  local work deb
  work="$(mktemp -d)"
  if ! apt-cache show wrk >/dev/null 2>&1; then
    apt-get update -qq || die "apt-get update failed"
  fi
  log "apt-get download wrk libluajit-5.1-2 libluajit-5.1-common (into ${wrk_dir})"
  (cd "${work}" && apt-get download -qq wrk libluajit-5.1-2 libluajit-5.1-common 2>/dev/null) \
    || die "apt-get download failed (is Debian's archive reachable?)"
  mkdir -p "${wrk_dir}"
  for deb in "${work}"/*.deb; do dpkg -x "${deb}" "${wrk_dir}" || die "dpkg -x ${deb} failed"; done
  rm -rf "${work}"
  if LD_LIBRARY_PATH="${libs}" ldd "${wrk_dir}/usr/bin/wrk" | grep -q 'not found'; then
    die "wrk misses libraries: $(LD_LIBRARY_PATH="${libs}" ldd "${wrk_dir}/usr/bin/wrk" | grep 'not found')"
  fi
}
wrk() { LD_LIBRARY_PATH="${wrk_dir}/usr/lib/x86_64-linux-gnu" "${wrk_dir}/usr/bin/wrk" "$@"; }

machine() {
  printf '%s cores (nproc), %s, %s GiB RAM, load average %s\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" \
    "$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}

if [[ "${SCALE_NO_BUILD:-0}" != 1 ]]; then
  # The example counts requests (the quick release profile does); the exporter whose latency and
  # memory part 2 measures is built as it ships.
  log "cargo build --release --locked --example scale; cargo build --profile ${profile} --features jemalloc --locked --bin env0-exporter"
  cargo build --release --locked --example scale >&2
  # With the allocator that ships (the Dockerfile's --features jemalloc): the memory figures are its.
  cargo build --profile "${profile}" --features jemalloc --locked --bin env0-exporter >&2
fi
bin="${repo}/target/${profile}/env0-exporter"

echo "## Scale: ${environments} environments, ${projects} projects, a run every ${interval} per environment"
echo
echo "Machine: $(machine)"
echo
if [[ "${skip_simulated}" != 1 ]]; then
echo "### 1. Simulated time (budget ${budget}/min, 60 s polls)"
echo
preset_flags=()
for f in "${SIM_PRESET[@]}"; do preset_flags+=("--sim-flag=${f}"); done
for variant in "with long-unfinished runs" "without long-unfinished runs" "without long-unfinished runs, webhooks live"; do
  extra=()
  if [[ "${variant}" == without* ]]; then
    extra=(--sim-flag=--sim-stuck-share --sim-flag=0 --sim-flag=--sim-long-approval-share --sim-flag=0)
  fi
  if [[ "${variant}" == *"webhooks live" ]]; then
    extra+=(--webhooks)
  fi
  echo "#### ${variant}"
  echo
  log "part 1 (${variant}): target/release/examples/scale --environments ${environments} --projects ${projects} --budget ${budget} --polls ${polls} ${preset_flags[*]} ${extra[*]}"
  "${repo}/target/release/examples/scale" --environments "${environments}" --projects "${projects}" \
    --mean-interval "${interval}" --budget "${budget}" --polls "${polls}" "${preset_flags[@]}" "${extra[@]}"
  echo
done
fi
[[ "${skip_real}" == 1 ]] && exit 0

install_wrk
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port="$(free_port)" exp_port="$(free_port)"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "${p}" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "${work}"; }
trap cleanup EXIT

log "part 2: ${bin} simulate --sim-listen-address 127.0.0.1:${sim_port} ${sim_flags[*]}"
"${bin}" simulate --sim-listen-address "127.0.0.1:${sim_port}" "${sim_flags[@]}" >"${work}/simulate.log" 2>&1 &
pids+=($!)
sleep 1
log "part 2: ${bin} --api-endpoint http://127.0.0.1:${sim_port} --listen-address 127.0.0.1:${exp_port} --max-requests-per-minute ${real_budget}"
"${bin}" --api-endpoint "http://127.0.0.1:${sim_port}" --api-key demo-key --api-secret demo-secret \
  --listen-address "127.0.0.1:${exp_port}" --max-requests-per-minute "${real_budget}" \
  >"${work}/exporter.log" 2>&1 &
exporter=$!
pids+=("${exporter}")
url="http://127.0.0.1:${exp_port}/metrics"
openmetrics='application/openmetrics-text; version=1.0.0'

scrape() { curl -fsS "${url}" 2>/dev/null || true; }
value() { awk -v m="$1" '$1 == m {print $2}'; }
start=${SECONDS}
until [[ "$(scrape | value env0_exporter_backfill_pending_environments)" == 0 \
         && "$(scrape | value env0_up)" == 1 ]]; do
  (( SECONDS - start < 3600 )) || die "no finished backfill after 60 min (see ${work}/exporter.log)"
  kill -0 "${exporter}" 2>/dev/null || die "the exporter exited: $(tail -n 5 "${work}/exporter.log")"
  sleep 5
done
backfill=$((SECONDS - start))
sleep 5
body="$(scrape)"
rss() { awk -v k="$1" '$1 == k":" {printf "%.1f MiB", $2 / 1024}' "/proc/${exporter}/status"; }

bytes() { # ACCEPT ENCODING -> bytes of the body as sent, and its Content-Encoding
  local headers
  headers="$(curl -fsS -o "${work}/body" -D - -H "Accept: $1" -H "Accept-Encoding: $2" "${url}")"
  printf '%s B (%s)' "$(wc -c <"${work}/body")" \
    "$(awk -F': ' 'tolower($1) == "content-encoding" {gsub("\r", "", $2); e = $2} END {print (e == "" ? "identity" : e)}' <<<"${headers}")"
}

echo
echo "### 2. Real processes (budget ${real_budget}/min)"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| backfill, wall clock (until env0_exporter_backfill_pending_environments = 0) | ${backfill} s |"
echo "| deployments tracked | $(value env0_exporter_tracked_deployments <<<"${body}") |"
echo "| series served (all families) | $(grep -vc '^#' <<<"${body}") |"
echo "| scrape, Prometheus text 0.0.4 | $(bytes 'text/plain' 'identity'); gzip $(bytes 'text/plain' 'gzip') |"
echo "| scrape, OpenMetrics 1.0.0 | $(bytes "${openmetrics}" 'identity'); gzip $(bytes "${openmetrics}" 'gzip') |"
echo "| exporter RSS after backfill: current (VmRSS) / peak (VmHWM) | $(rss VmRSS) / $(rss VmHWM) |"

run_wrk() { # LABEL [wrk header args...]
  local label="$1"; shift
  local out="${work}/wrk.txt"
  wrk -t2 -c"${connections}" -d"${wrk_duration}" --latency "$@" "${url}" >"${out}" 2>&1 \
    || die "wrk failed: $(cat "${out}")"
  cp "${out}" "${work}/wrk-${label// /_}.txt"
  awk -v label="${label}" '
    /^ +50%/ {p50 = $2} /^ +90%/ {p90 = $2} /^ +99%/ {p99 = $2}
    /^Requests\/sec/ {rps = $2}
    /requests in/ {total = $1}
    /Non-2xx or 3xx responses/ {non2xx = $NF}
    /Socket errors/ {errors = $0; sub(/^ *Socket errors: */, "", errors)}
    END {
      printf "| %s: p50 / p90 / p99 | %s / %s / %s |\n", label, p50, p90, p99
      printf "| %s: requests/s (requests) | %s (%s) |\n", label, rps, total
      printf "| %s: errors / non-2xx | %s / %s |\n", label, (errors == "" ? "none" : errors), (non2xx == "" ? 0 : non2xx)
    }' "${out}"
}
log "wrk -t2 -c${connections} -d${wrk_duration} --latency -H 'Accept-Encoding: gzip' ${url}"
run_wrk "wrk ${connections} scrapers ${wrk_duration}, gzip" -H 'Accept-Encoding: gzip'
log "wrk -t2 -c${connections} -d${wrk_duration} --latency ${url}"
run_wrk "wrk ${connections} scrapers ${wrk_duration}, no gzip"
echo "| exporter RSS after wrk: current (VmRSS) / peak (VmHWM) | $(rss VmRSS) / $(rss VmHWM) |"

echo
echo "| family (series served after backfill) | series |"
echo "|---|---|"
awk '/^# TYPE / {f = $3; next} /^#/ || NF == 0 {next} {n[f]++}
     END {for (f in n) printf "%d %s\n", n[f], f}' <<<"${body}" \
  | sort -k1,1nr -k2 | head -n 10 | awk '{printf "| %s | %s |\n", $2, $1}'

if [[ -n "${soak}" ]]; then
  seconds="$(python3 -c 'import re, sys
units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
m = re.fullmatch(r"(\d+)([smhd])", sys.argv[1]) or sys.exit("scale: --soak takes e.g. 30m, 2h")
print(int(m[1]) * units[m[2]])' "${soak}")"
  echo
  echo "| soak: minute | VmRSS | VmHWM | series | env0_up |"
  echo "|---|---|---|---|---|"
  for ((minute = 1; minute * 60 <= seconds; minute++)); do
    sleep 60
    kill -0 "${exporter}" 2>/dev/null || die "the exporter exited during the soak"
    body="$(scrape)"
    echo "| ${minute} | $(rss VmRSS) | $(rss VmHWM) | $(grep -vc '^#' <<<"${body}") | $(value env0_up <<<"${body}") |"
  done
fi
