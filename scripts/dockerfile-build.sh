#!/usr/bin/env bash
# Runs the Dockerfile's own `cargo build` command, read from the Dockerfile, so that the test
# command proves the build that ships (no container runtime is needed or used). Fails when the
# Dockerfile holds no `cargo build` line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The first `cargo build …` outside comments, up to a line continuation or the next command.
cmd="$(grep -v '^[[:space:]]*#' Dockerfile | sed -n 's/.*\(cargo build [^\\&;|]*\).*/\1/p' | head -n1 \
  | sed 's/[[:space:]]*$//')"
[[ -n "${cmd}" ]] || { echo "dockerfile-build: no 'cargo build' in the Dockerfile" >&2; exit 1; }
echo "dockerfile-build: ${cmd}"
read -r -a argv <<<"${cmd}"
exec "${argv[@]}"
