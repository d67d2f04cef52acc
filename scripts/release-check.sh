#!/usr/bin/env bash
# Everything a release needs that can be checked without publishing (run by the README's test
# command, and by .github/workflows/release.yml with --tag before anything is built):
#   1. versions agree across Cargo.toml, Cargo.lock, Chart.yaml (version, appVersion), the
#      chart's image, the Dockerfile and the CHANGELOG; with --tag, the tag matches and the
#      CHANGELOG has the version's section (written to --notes as the release notes);
#   2. the chart packages (`helm package`, Helm's own code through helm-python-sdk);
#   3. the workflows pass actionlint and zizmor (offline audits, auditor persona: every finding,
#      however minor, fails; an accepted one must be suppressed with its reason in
#      .github/zizmor.yml), and the workflows and dependabot.yml match GitHub's JSON schemas;
#   4. a self-test: the same check on a copy with a version out of step must fail.
#
# Usage: scripts/release-check.sh [--tag vX.Y.Z] [--notes FILE]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
venv="${repo_root}/.cache/venv"

bash scripts/install-tools.sh >/dev/null \
  || { echo "release-check: FAIL: scripts/install-tools.sh could not install the tools" >&2; exit 1; }

echo "release-check: versions, CHANGELOG, helm package"
"${venv}/bin/python" tests/tooling/release_check.py "$@"

echo "release-check: actionlint $("${venv}/bin/actionlint" --version | head -n1), with shellcheck on every run: script"
"${venv}/bin/actionlint" -no-color -shellcheck "${venv}/bin/shellcheck" .github/workflows/*.yml
echo "release-check: zizmor (offline audits, auditor persona)"
"${venv}/bin/zizmor" --offline --persona=auditor --no-progress .github/workflows/
echo "release-check: GitHub's schemas for the workflows, dependabot.yml and the issue forms"
"${venv}/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"${venv}/bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml
shopt -s nullglob
for form in .github/ISSUE_TEMPLATE/*.yml; do
  [[ "${form}" == */config.yml ]] && continue
  "${venv}/bin/check-jsonschema" --builtin-schema vendor.github-issue-forms "${form}"
done

echo "release-check: self-test (a chart out of step, a tag without its CHANGELOG section: both must fail)"
copy="$(mktemp -d)"
trap 'rm -rf "${copy}"' EXIT
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
must_fail() { # WHAT, then the arguments of release_check.py; runs on the copy
  local what="$1"; shift
  if RELEASE_CHECK_ROOT="${copy}" "${venv}/bin/python" tests/tooling/release_check.py "$@" >/dev/null 2>&1; then
    echo "release-check: FAIL: the check passed ${what}" >&2
    exit 1
  fi
}
fresh_copy() { rm -rf "${copy:?}"/*; cp -r Cargo.toml Cargo.lock CHANGELOG.md Dockerfile helm "${copy}/"; }
fresh_copy
sed -i 's/^version: .*/version: 0.0.0-out-of-step/' "${copy}/helm/env0-exporter/Chart.yaml"
must_fail "a chart whose version is out of step"
fresh_copy
sed -i "s/^## \[${version}\].*/## Not a version heading/" "${copy}/CHANGELOG.md"
must_fail "the tag v${version} without a CHANGELOG section" --tag "v${version}"
echo "release-check: passed"
