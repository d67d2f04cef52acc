#!/usr/bin/env python3
"""Fails when Cargo.toml's `rust-version` is lower than what the locked dependency graph needs.

The minimum supported Rust version (MSRV) of the crate is the highest of
  - the `rust-version` of every package in the resolved graph (`cargo metadata --locked`, all
    targets and platforms, dev-dependencies included: `cargo test` builds them too), and
  - the first Rust release of every package's edition (2024 needs 1.85, 2021 needs 1.56).
A lower `rust-version` promises a toolchain that cannot build the locked dependencies.

    python3 scripts/check-msrv.py          # check (the test suite runs this)
    python3 scripts/check-msrv.py --print  # print the computed minimum and which packages set it
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The first stable release of each edition.
EDITION_MIN = {"2015": (1, 0), "2018": (1, 31), "2021": (1, 56), "2024": (1, 85)}


def version(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))


def show(v: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in (v[:2] if v[2] == 0 else v))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print", action="store_true", help="print the computed minimum and exit 0")
    ap.add_argument("--manifest", default=str(ROOT / "Cargo.toml"), help="Cargo.toml to check")
    args = ap.parse_args()

    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--manifest-path", args.manifest],
        capture_output=True, text=True)
    if out.returncode != 0:
        print(f"check-msrv: FAIL: cargo metadata --locked failed:\n{out.stderr}", file=sys.stderr)
        return 1
    meta = json.loads(out.stdout)
    resolved = {node["id"] for node in meta["resolve"]["nodes"]}
    root_id = meta["resolve"]["root"]
    needs: list[tuple[tuple[int, ...], str]] = []
    for pkg in meta["packages"]:
        if pkg["id"] not in resolved:
            continue
        who = f'{pkg["name"]} {pkg["version"]}'
        if pkg["edition"] in EDITION_MIN:
            needs.append((EDITION_MIN[pkg["edition"]] + (0,), f"{who} (edition {pkg['edition']})"))
        if pkg["id"] != root_id and pkg.get("rust_version"):
            needs.append((version(pkg["rust_version"]), f"{who} (rust-version {pkg['rust_version']})"))
    if not needs:
        print("check-msrv: FAIL: cargo metadata listed no packages", file=sys.stderr)
        return 1
    minimum = max(v for v, _ in needs)
    setters = sorted(who for v, who in needs if v == minimum)

    root = next(p for p in meta["packages"] if p["id"] == root_id)
    declared_text = root.get("rust_version")
    print(f"check-msrv: {len(resolved)} resolved packages need Rust >= {show(minimum)}, set by "
          f"{', '.join(setters[:4])}{' and others' if len(setters) > 4 else ''}")
    if args.print:
        return 0
    if not declared_text:
        print("check-msrv: FAIL: Cargo.toml has no rust-version", file=sys.stderr)
        return 1
    declared = version(declared_text)
    if declared < minimum:
        print(f"check-msrv: FAIL: Cargo.toml says rust-version = \"{declared_text}\" but the locked "
              f"dependencies need {show(minimum)}: set rust-version = \"{show(minimum)}\"", file=sys.stderr)
        return 1
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", declared_text):
        print(f"check-msrv: FAIL: rust-version {declared_text!r} is not a version", file=sys.stderr)
        return 1
    print(f"check-msrv: Cargo.toml rust-version {declared_text} >= {show(minimum)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
