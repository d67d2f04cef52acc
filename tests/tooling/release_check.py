"""What a release needs, checked without publishing anything (run by scripts/release-check.sh
with the venv python of scripts/install-tools.sh: it needs PyYAML and helm_python).

    release_check.py [--tag vX.Y.Z] [--notes FILE] [--package-dir DIR]

1. Versions agree: Cargo.toml's package version, Cargo.lock's entry for it, Chart.yaml's
   `version` and `appVersion`, the chart's image (values.yaml: repository, and a tag that is
   empty so that it follows appVersion, or equal to it), the Artifact Hub image annotation, and
   the Dockerfile's default VERSION build argument.
2. The CHANGELOG: with --tag, the tag is `v` + that version and the CHANGELOG has a non-empty
   `## [X.Y.Z]` section (its text becomes the release notes, written to --notes). Without a tag,
   the version has a section of its own or an `## [Unreleased]` section is there to become it.
3. The chart packages (Helm's own packaging code, through helm-python-sdk) into a .tgz named
   env0-exporter-X.Y.Z.tgz whose Chart.yaml carries the same version and appVersion.

With GITHUB_OUTPUT set (in a workflow), writes `version`, `image` and `chart_registry` there.
Exit 1 with every problem listed, 0 when all hold.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

import yaml

# RELEASE_CHECK_ROOT: another checkout to check (the self-test of scripts/release-check.sh).
ROOT = Path(os.environ.get("RELEASE_CHECK_ROOT") or Path(__file__).resolve().parents[2])
CHART = ROOT / "helm" / "env0-exporter"
# Where the release workflow pushes the chart (`helm push ... oci://<this>`): beside the image.
CHART_REGISTRY = "ghcr.io/env0-exporter/charts"

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")


def changelog_section(text: str, heading: str) -> str | None:
    """The body of `## [heading]` (up to the next `## ` heading), or None when absent."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if re.match(rf"^## \[{re.escape(heading)}\](\s|$)", line):
            start = i + 1
            break
    if start is None:
        return None
    end = len(lines)
    for j in range(start, len(lines)):
        if lines[j].startswith("## "):
            end = j
            break
    return "\n".join(lines[start:end]).strip()


def check(tag: str | None, notes: Path | None, package_dir: Path) -> tuple[list[str], dict]:
    problems: list[str] = []
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    name = cargo["package"]["name"]
    version = cargo["package"]["version"]
    if not SEMVER.match(version):
        problems.append(f"Cargo.toml: version {version!r} is not semantic versioning")

    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    locked = [p["version"] for p in lock.get("package", []) if p["name"] == name]
    if locked != [version]:
        problems.append(f"Cargo.lock: {name} is {locked}, Cargo.toml says {version}")

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for key in ("version", "appVersion"):
        if str(chart.get(key)) != version:
            problems.append(f"Chart.yaml: {key} is {chart.get(key)!r}, Cargo.toml says {version}")

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    image = values.get("image", {})
    repository = image.get("repository", "")
    tag_value = image.get("tag", "")
    if tag_value not in ("", None, version):
        problems.append(
            f"values.yaml: image.tag is {tag_value!r}: leave it empty (it follows appVersion) "
            f"or set it to {version}"
        )
    if not repository.startswith("ghcr.io/"):
        problems.append(f"values.yaml: image.repository {repository!r} is not where releases push (ghcr.io)")
    images = yaml.safe_load(chart.get("annotations", {}).get("artifacthub.io/images", "[]")) or []
    listed = [i.get("image") for i in images]
    if listed != [f"{repository}:{version}"]:
        problems.append(f"Chart.yaml: artifacthub.io/images lists {listed}, want [{repository}:{version}]")

    dockerfile = (ROOT / "Dockerfile").read_text()
    arg = re.search(r"^ARG VERSION=(\S+)$", dockerfile, re.M)
    if not arg or arg.group(1) != version:
        problems.append(f"Dockerfile: ARG VERSION={arg.group(1) if arg else '(missing)'}, want {version}")

    changelog = (ROOT / "CHANGELOG.md").read_text()
    section = changelog_section(changelog, version)
    if tag is not None:
        if tag != f"v{version}":
            problems.append(f"tag {tag} is not v{version} (Cargo.toml)")
        if not section:
            problems.append(
                f"CHANGELOG.md: no non-empty '## [{version}]' section: the release notes come from it"
            )
        elif notes is not None:
            notes.write_text(section + "\n")
    elif section is None and changelog_section(changelog, "Unreleased") is None:
        problems.append(f"CHANGELOG.md: neither a '## [{version}]' nor an '## [Unreleased]' section")

    import helm_python as helm

    try:
        archive = Path(helm.package(str(CHART), destination=str(package_dir)))
    except helm.HelmError as e:
        problems.append(f"helm package: {e}")
    else:
        if archive.name != f"env0-exporter-{version}.tgz":
            problems.append(f"helm package wrote {archive.name}, want env0-exporter-{version}.tgz")
        with tarfile.open(archive) as tar:
            member = tar.extractfile("env0-exporter/Chart.yaml")
            packed = yaml.safe_load(member.read()) if member else {}
        if str(packed.get("version")) != version or str(packed.get("appVersion")) != version:
            problems.append(f"the packaged Chart.yaml says {packed.get('version')}/{packed.get('appVersion')}")
        else:
            print(f"release-check: helm package: {archive.name} ({archive.stat().st_size} bytes)")

    return problems, {"version": version, "image": repository, "chart_registry": CHART_REGISTRY}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", help="the release tag (vX.Y.Z): the CHANGELOG must have its section")
    parser.add_argument("--notes", type=Path, help="with --tag: write the release notes here")
    parser.add_argument("--package-dir", type=Path, help="where helm package writes (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        problems, outputs = check(args.tag, args.notes, args.package_dir or Path(tmp))
    if problems:
        print("release-check: FAIL:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(
        f"release-check: version {outputs['version']} agrees across Cargo.toml, Cargo.lock, Chart.yaml, "
        f"the chart's image ({outputs['image']}), the Dockerfile and the CHANGELOG"
    )
    if "GITHUB_OUTPUT" in os.environ:
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
            for key, value in outputs.items():
                out.write(f"{key}={value}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
