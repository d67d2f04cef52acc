#!/usr/bin/env python3
"""Generates helm/env0-exporter/README.md from README.md.tmpl, Chart.yaml and the comments of values.yaml.

Comments follow helm-docs' convention: a comment starting with `# --` documents the key on the
line below it; the comment lines right after it continue the description; `# @default -- text`
replaces the default shown in the table. Every value must be documented, by its own comment or by
one on a map above it (then the map is one row with its whole default).

    scripts/chart-readme.py            # check: exit 1 when README.md is not what this script makes
    scripts/chart-readme.py --write    # rewrite README.md

Needs PyYAML (the venv of scripts/install-tools.sh has it). scripts/check-bundle.sh runs the
check, and `scripts/check-bundle.sh --sync` the --write form.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "env0-exporter"
VALUES = CHART / "values.yaml"
TEMPLATE = CHART / "README.md.tmpl"
OUT = CHART / "README.md"

KEY_RE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?:\s|$)")
DOC_RE = re.compile(r"^ *# -- ?(?P<text>.*)$")
DEFAULT_RE = re.compile(r"^ *# @default -- ?(?P<text>.*)$")
COMMENT_RE = re.compile(r"^ *#(?: (?P<text>.*))?$")


@dataclass
class Doc:
    description: str
    default: str | None = None


class ValuesError(Exception):
    pass


def parse_comments(text: str) -> dict[tuple[str, ...], Doc]:
    """Maps each documented key path to its description, from the raw lines of values.yaml."""
    docs: dict[tuple[str, ...], Doc] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the maps enclosing the current line
    pending: Doc | None = None
    in_doc = False
    for n, line in enumerate(text.splitlines(), 1):
        if m := DOC_RE.match(line):
            if pending is not None:
                raise ValuesError(f"values.yaml:{n}: a second '# --' comment before any key")
            pending, in_doc = Doc(m.group("text").strip()), True
            continue
        if m := DEFAULT_RE.match(line):
            if pending is None:
                raise ValuesError(f"values.yaml:{n}: '# @default --' without a '# --' comment above")
            pending.default = m.group("text").strip()
            continue
        if m := COMMENT_RE.match(line):
            if pending is not None and in_doc and m.group("text"):
                pending.description += " " + m.group("text").strip()
            continue
        if not line.strip():
            if pending is not None:
                raise ValuesError(f"values.yaml:{n}: blank line between a '# --' comment and its key")
            continue
        m = KEY_RE.match(line)
        if not m:
            continue  # a list item or a continuation: belongs to the key above
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(k for _, k in stack) + (m.group("key"),)
        stack.append((indent, m.group("key")))
        if pending is not None:
            docs[path] = pending
            pending, in_doc = None, False
    if pending is not None:
        raise ValuesError("values.yaml: a '# --' comment at the end of the file documents nothing")
    return docs


def type_of(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def rows(values: dict, docs: dict[tuple[str, ...], Doc]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every documented key, in file order."""
    out: list[tuple[str, str, str, str]] = []
    undocumented: list[str] = []

    def walk(node: dict, prefix: tuple[str, ...], covered: bool) -> None:
        for key, value in node.items():
            path = prefix + (key,)
            doc = docs.get(path)
            if doc is not None:
                default = doc.default if doc.default is not None else f"`{json.dumps(value)}`"
                out.append((".".join(path), type_of(value), default, doc.description))
            if isinstance(value, dict) and value:
                walk(value, path, covered or doc is not None)
            elif doc is None and not covered:
                undocumented.append(".".join(path))

    walk(values, (), False)
    stray = sorted(".".join(p) for p in docs if not _exists(values, p))
    if stray:
        raise ValuesError(f"documented keys not found in values.yaml: {stray}")
    if undocumented:
        raise ValuesError("values without a '# --' comment (on themselves or a map above them): "
                          + ", ".join(undocumented))
    return out


def _exists(values: dict, path: tuple[str, ...]) -> bool:
    node = values
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return False
        node = node[k]
    return True


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    table = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for key, typ, default, description in rows(values, parse_comments(text)):
        table.append(f"| `{key}` | {typ} | {cell(default)} | {cell(description)} |")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = f'{values["image"]["repository"]}:{values["image"]["tag"] or chart["appVersion"]}'
    subst = {
        "NAME": chart["name"],
        "DESCRIPTION": chart["description"],
        "VERSION": chart["version"],
        "APP_VERSION": str(chart["appVersion"]),
        "HOME": chart["home"],
        "IMAGE": image,
        "IMAGE_REPOSITORY": values["image"]["repository"],
        "VALUES_TABLE": "\n".join(table),
    }
    body = TEMPLATE.read_text()
    for name, value in subst.items():
        body = body.replace("{{ " + name + " }}", value)
    left = re.findall(r"\{\{ [A-Z_]+ \}\}", body)
    if left:
        raise ValuesError(f"README.md.tmpl has unknown placeholders {sorted(set(left))}")
    header = ("<!-- Generated by scripts/chart-readme.py from README.md.tmpl, Chart.yaml and the "
              "comments of values.yaml: edit those and run scripts/chart-readme.py --write. -->\n")
    return header + body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", "--sync", action="store_true", help="rewrite README.md")
    args = ap.parse_args()
    try:
        text = render()
    except (ValuesError, KeyError) as e:
        print(f"chart-readme: FAIL: {e}", file=sys.stderr)
        return 1
    rel = OUT.relative_to(ROOT)
    if args.write:
        OUT.write_text(text)
        print(f"chart-readme: wrote {rel}")
        return 0
    if not OUT.exists() or OUT.read_text() != text:
        print(f"chart-readme: FAIL: {rel} is not what scripts/chart-readme.py makes from values.yaml: "
              "run scripts/chart-readme.py --write (or scripts/check-bundle.sh --sync)", file=sys.stderr)
        return 1
    print(f"chart-readme: {rel} matches values.yaml ({text.count(chr(10) + '| `')} values documented)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
