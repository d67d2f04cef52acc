#!/usr/bin/env bash
# Builds the documentation site (mkdocs.yml: MkDocs with the Material theme, from docs/) in strict
# mode: a link to a missing page, an anchor that is no heading, or a page left out of the nav
# fails the build. No network is used by the build; the first run installs the pinned tools
# (scripts/docs-requirements.txt, from PyPI) into .cache/docs-venv.
# The README's own links, and the tables that mirror code (metrics, flags, alerts), are checked by
# `cargo test --test golden` (tests/golden/docs.rs), which needs nothing but Rust.
#
# Usage: scripts/check-docs.sh [--serve]   (--serve: a live preview on http://127.0.0.1:8000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.cache/docs-venv
requirements=scripts/docs-requirements.txt
export NO_MKDOCS_2_WARNING=1

# Idempotent: the venv is (re)made only when it does not hold exactly the pinned versions.
if ! { [[ -x "${venv}/bin/mkdocs" ]] \
       && diff -q <("${venv}/bin/python" -m pip freeze --disable-pip-version-check | sort -f) \
                  <(grep -v '^#' "${requirements}" | sort -f) >/dev/null; }; then
  echo "check-docs: installing MkDocs and the Material theme into ${venv} (pinned, from PyPI)"
  command -v python3 >/dev/null || { echo "check-docs: FAIL: python3 not found" >&2; exit 1; }
  rm -rf "${venv}"
  python3 -m venv "${venv}" \
    || { echo "check-docs: FAIL: python3 -m venv (Debian: apt-get install python3-venv)" >&2; exit 1; }
  "${venv}/bin/python" -m pip install -q --disable-pip-version-check -r "${requirements}" \
    || { echo "check-docs: FAIL: pip could not install ${requirements}" >&2; exit 1; }
fi

if [[ "${1:-}" == --serve ]]; then
  exec "${venv}/bin/mkdocs" serve
fi
"${venv}/bin/mkdocs" build --strict --quiet
echo "check-docs: site built in strict mode into target/docs-site: every page in the nav, every link and anchor resolves"
