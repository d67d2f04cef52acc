#!/usr/bin/env bash
# The binary as it ships: the Dockerfile's build command, read from the Dockerfile so that the two
# cannot drift apart, run here without a container runtime (the `dist` profile and the `jemalloc`
# feature: link-time optimisation across every crate, one codegen unit, jemalloc). Into a target directory of its
# own, as in the Dockerfile's build stage, so that it does not wait for another cargo's lock.
#
# Not a step of the test command (scripts/test.sh): about ten minutes of CPU, most of it one
# thread of link-time optimisation. CI runs it as a job of its own (.github/workflows/ci.yml).
#
# Usage: scripts/dist-build.sh            binary: target/dockerfile-build/dist/env0-exporter
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

docker_build="$(sed -n 's/^.*&& \(cargo build [^&]*--locked\).*$/\1/p' Dockerfile | tail -n 1)"
[[ "${docker_build}" == "cargo build --profile dist "* ]] \
  || { echo "dist-build: no 'cargo build --profile dist … --locked' found in the Dockerfile" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}/dockerfile-build"
echo "dist-build: ${docker_build} (into ${target})"
start="${SECONDS}"
# shellcheck disable=SC2086 # the command's words, as the Dockerfile's shell splits them
CARGO_TARGET_DIR="${target}" RUSTC_WORKSPACE_WRAPPER= ${docker_build}
bin="${target}/dist/env0-exporter"
[[ -x "${bin}" ]] || { echo "dist-build: ${bin} was not built" >&2; exit 1; }
"${bin}" --version
echo "dist-build: ${bin}, $(stat -c %s "${bin}") bytes, built in $((SECONDS - start)) s"
