#!/usr/bin/env python3
"""Checks of the monitoring bundle that need more than a one-line command.

Run with the venv python of scripts/install-tools.sh (it needs PyYAML and helm_python):

    bundle_check.py dashboard  --promtool P            structure + every expression parses
    bundle_check.py live       --promtool P --prometheus P --exporter-bin B
                                                     real Prometheus scraping `env0-exporter demo`
    bundle_check.py helm       --promtool P --kubernetes-validate K
                                                     lint, render, validate every ci/*-values.yaml
    bundle_check.py runbook                          every alert's runbook_url resolves in docs/runbook.md
    bundle_check.py quickstart --compose C --promtool P --amtool A
                                                     examples/quickstart: compose, Prometheus,
                                                     Alertmanager and Grafana provisioning configs
    bundle_check.py sync [--write]                   chart copies of dashboard and rules

Every subcommand prints what it checked and exits non-zero on the first class of problems.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "env0-exporter.json"
RULE_FILES = [ROOT / "rules" / "env0-exporter.rules.yml", ROOT / "rules" / "env0-exporter.alerts.yml"]
CHART = ROOT / "helm" / "env0-exporter"
CHART_COPIES = {
    CHART / "files" / "env0-exporter.json": DASHBOARD,
    CHART / "files" / "env0-exporter.rules.yml": RULE_FILES[0],
    CHART / "files" / "env0-exporter.alerts.yml": RULE_FILES[1],
}
ALLOWLIST = Path(__file__).with_name("live-allowlist.yml")

# What the dashboard's variables become outside Grafana. Every variable must be used as
# label=~"$var", so ".*" means "All".
RATE_INTERVAL = "1m"
# The demo as the check runs it: a busier, faster simulated organisation (a run per environment
# a minute, runs 20x faster than IaC-like) so that within a minute every histogram and counter
# label set is observed more than once (rate() cannot see the observation that creates a
# series); the exporter polls every 20s and reads a 1h lookback so its 500 requests/minute go to
# fresh changes instead of a 24h backfill. Measured: all data within ~45s (limit 180s).
# The opt-in views are on, so that the project and environment panels have data.
DEMO_ARGS = ["--sim-mean-deployment-interval", "1m", "--sim-time-scale", "0.05", "--poll-interval", "20s", "--lookback", "1h",
             "--project-label", "--environment-metrics"]
VAR_RE = re.compile(r"\$\{?(\w+)\}?")

# Families that carry `project` with --project-label (docs/metrics.md), and the environment view.
# Every dashboard selector of one of them must filter project=~"$project".
PROJECT_FAMILIES = (
    "env0_deployments", "env0_deployments_finished_total", "env0_deployment_duration_seconds",
    "env0_deployment_queue_duration_seconds", "env0_deployment_resource_changes_total",
    "env0_deployment_approval_wait_seconds", "env0_drift_detections_total",
    "env0_environment_recovery_duration_seconds", "env0_environment_info",
    "env0_environment_latest_deployment", "env0_environment_latest_deployment_finished_timestamp_seconds",
)
PROJECT_SELECTOR_RE = re.compile(
    r"(?<![\w:])(" + "|".join(sorted(PROJECT_FAMILIES, key=len, reverse=True))
    + r")(_bucket|_sum|_count)?(?![\w:])(\{[^}]*\})?")  # not inside a recording rule's name
# Histograms whose buckets carry exemplars (OpenMetrics): panels reading them ask for exemplars.
EXEMPLAR_BUCKETS = ("env0_deployment_duration_seconds_bucket", "env0_deployment_queue_duration_seconds_bucket")
EXEMPLAR_LABELS = {"deployment", "env", "project"}
# env0's page of an environment (docs/metrics.md), as the dashboard links it: from the ids of the
# environment view's labels (`project` and `environment` are names).
ENV0_LINK_RE = re.compile(r"^https://app\.env0\.com/p/\$\{__data\.fields\.(project_id)\}"
                          r"/environments/\$\{__data\.fields\.(environment_id)\}$")


class CheckFailed(Exception):
    pass


def say(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- dashboard


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def substitute(expr: str, variables: set[str]) -> str:
    """Replaces Grafana variables the way check 3 queries them: $__rate_interval -> 1m and every
    dashboard variable -> .* (allowed only inside =~"...")."""
    out = expr.replace("$__rate_interval", RATE_INTERVAL)
    for m in VAR_RE.finditer(out):
        name = m.group(1)
        if name not in variables:
            raise CheckFailed(f"unknown variable ${name} in {expr!r}")
    bad = re.findall(r'(?<!=~)"\$\{?\w+\}?"', out)
    if bad:
        raise CheckFailed(f"variables used outside a =~ matcher ({bad}) in {expr!r}")
    return VAR_RE.sub(".*", out)


def panel_queries(dash: dict) -> list[tuple[str, str, str]]:
    """(panel label, refId, substituted expression) for every target of every panel."""
    variables = {v["name"] for v in dash["templating"]["list"]}
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            label = f'panel {p["id"]} "{p["title"]}"'
            out.append((label, t["refId"], substitute(t["expr"], variables)))
    return out


def variable_query(v: dict) -> str:
    """The PromQL of a query variable (Grafana's Prometheus variables keep it in query.query)."""
    q = v.get("query", "")
    return q.get("query", "") if isinstance(q, dict) else q


def check_dashboard_structure(dash: dict) -> list[str]:
    problems = []
    if "__inputs" in dash:
        problems.append("dashboard has __inputs (use the datasource variable instead)")
    if not dash.get("uid") or not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dash["uid"]):
        problems.append(f"uid missing or not a stable slug: {dash.get('uid')!r}")
    if not 39 <= dash.get("schemaVersion", 0) <= 41:
        problems.append(f"schemaVersion {dash.get('schemaVersion')} outside 39..41")
    tvars = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = tvars.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no datasource variable of type datasource for prometheus")
    want_vars = {
        "job": "label_values(env0_up, job)",
        "instance": 'label_values(env0_up{job=~"$job"}, instance)',
    }
    for name, query in want_vars.items():
        if name not in tvars or variable_query(tvars[name]) != query:
            problems.append(f"variable {name} must be {query}")
    for name in ("deployment_type", "iac_tool", "trigger", "project"):
        if name not in tvars:
            problems.append(f"filter variable {name} missing")
    proj = tvars.get("project", {})
    if proj and not (variable_query(proj).startswith("label_values(env0_deployments")
                     and variable_query(proj).endswith(", project)")
                     and proj.get("includeAll") and proj.get("allValue") == ".*"):
        problems.append("variable project must be label_values(env0_deployments..., project) with All = .* "
                        "(so that series without the label, --project-label off, still match)")
    for name, v in tvars.items():
        if name != "datasource" and v.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"variable {name} does not use ${{datasource}}")
    ids = [p.get("id") for p in dash["panels"]]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup or None in ids:
        problems.append(f"panel ids missing or duplicated: {dup}")
    for p in dash["panels"]:
        where = f'panel {p.get("id")} "{p.get("title")}"'
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"{where}: gridPos incomplete")
        elif gp["x"] + gp["w"] > 24:
            problems.append(f"{where}: gridPos wider than 24 columns")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: panel datasource is not ${{datasource}}")
        if not p.get("description"):
            problems.append(f"{where}: no description")
        if not p.get("targets"):
            problems.append(f"{where}: no targets")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{where} target {t.get('refId')}: datasource is not ${{datasource}}")
            if "rate(" in t.get("expr", "") and "$__rate_interval" not in t["expr"] \
                    and not re.search(r"\[1h\]", t["expr"]):
                problems.append(f"{where}: rate() without $__rate_interval")
            for m in PROJECT_SELECTOR_RE.finditer(t.get("expr", "")):
                if 'project=~"$project"' not in (m.group(3) or ""):
                    problems.append(f'{where}: {m.group(0)} does not filter project=~"$project"')
        problems += check_exemplars(p, where)
        problems += check_env0_links(p, where)
    return problems


def check_exemplars(p: dict, where: str) -> list[str]:
    """Time series panels of the histograms with exemplars ask for them (one target: every quantile
    reads the same buckets); nothing else does (other panel types do not draw them)."""
    targets = p.get("targets", [])
    reads = any(b in t.get("expr", "") for t in targets for b in EXEMPLAR_BUCKETS)
    asking = [t["refId"] for t in targets if t.get("exemplar")]
    if reads and p.get("type") == "timeseries" and len(asking) != 1:
        return [f"{where}: reads {'/'.join(EXEMPLAR_BUCKETS)} but {len(asking)} targets ask for exemplars (want 1)"]
    if asking and not (reads and p.get("type") == "timeseries"):
        return [f"{where}: targets {asking} ask for exemplars of a family that has none, or outside a time series"]
    return []


def check_env0_links(p: dict, where: str) -> list[str]:
    """Links into env0 have the shape of env0's environment page, and every field they use is a
    label the panel's query keeps."""
    problems = []
    links = list(p.get("links", []))
    for o in p.get("fieldConfig", {}).get("overrides", []):
        for prop in o.get("properties", []):
            if prop.get("id") == "links":
                links += prop.get("value") or []
    exprs = " ".join(t.get("expr", "") for t in p.get("targets", []))
    for link in links:
        url = link.get("url", "")
        if "env0.com" not in url:
            continue
        m = ENV0_LINK_RE.match(url)
        if not m:
            problems.append(f"{where}: env0 link {url} is not "
                            "https://app.env0.com/p/${__data.fields.project_id}/environments/${__data.fields.environment_id}")
            continue
        for field in m.groups():
            by = re.search(r"by \(([^)]*)\)", exprs)
            kept = {x.strip() for x in by.group(1).split(",")} if by else set()
            if field not in kept:
                problems.append(f"{where}: env0 link uses field {field}, which the query does not keep ({sorted(kept)})")
    return problems


def promtool_parse(promtool: str, named_exprs: list[tuple[str, str]]) -> None:
    """Parses expressions with promtool by making each one a recording rule."""
    groups = {"groups": [{"name": "parse-check", "rules": [
        {"record": f"parse_check_{i}", "expr": e} for i, (_, e) in enumerate(named_exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(groups, f)
        path = f.name
    try:
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        # promtool names the failing rule by index: map it back to the panel.
        detail = r.stdout + r.stderr
        for i, (name, e) in enumerate(named_exprs):
            if f"parse_check_{i}" in detail or f"rule {i + 1}:" in detail:
                detail += f"\n  -> {name}: {e}"
        raise CheckFailed(f"promtool could not parse dashboard expressions:\n{detail}")


def check_grafana_schema(dash: dict) -> None:
    """The dashboard against Grafana's dashboard schema as grafana-foundation-sdk encodes it
    (grafana_schema.py): unknown fields, wrong types and values outside Grafana's enums fail."""
    import grafana_schema
    from importlib.metadata import version

    for name, broken in grafana_schema.canaries(dash):
        if not grafana_schema.check_dashboard(broken):
            raise CheckFailed(f"the Grafana schema check accepted {name}: cannot trust it")
    problems = grafana_schema.check_dashboard(dash)
    if problems:
        raise CheckFailed("dashboard does not match Grafana's dashboard schema "
                          f"(grafana-foundation-sdk {version('grafana-foundation-sdk')}):\n  " + "\n  ".join(problems))
    say(f"  Grafana's dashboard schema (grafana-foundation-sdk {version('grafana-foundation-sdk')}) accepts every "
        f"field and value, down to panel options and queries; it rejects {len(grafana_schema.canaries(dash))} "
        "broken copies (canaries)")


def cmd_dashboard(args) -> None:
    dash = load_dashboard()
    problems = check_dashboard_structure(dash)
    if problems:
        raise CheckFailed("dashboard structure:\n  " + "\n  ".join(problems))
    panels = [p for p in dash["panels"] if p.get("type") != "row"]
    say(f"  structure ok: uid={dash['uid']}, schemaVersion={dash['schemaVersion']}, {len(panels)} panels, "
        "no __inputs, unique ids, gridPos, ${datasource} on every panel/target/variable; "
        'project=~"$project" on every selector of a family with `project`; exemplars asked for by '
        "each time series of the duration/queue histograms and nothing else; env0 links of env0's "
        "shape, from labels the query keeps")
    check_grafana_schema(dash)
    queries = panel_queries(dash)
    variables = {v["name"] for v in dash["templating"]["list"]}
    named = [(f"{label} {ref}", e) for label, ref, e in queries]
    for v in dash["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.+), *\w+\)", variable_query(v))
        if v["type"] == "query":
            if not m:
                raise CheckFailed(f"variable {v['name']}: not a label_values(selector, label) query")
            named.append((f"variable {v['name']}", substitute(m.group(1), variables)))
    promtool_parse(args.promtool, named)
    say(f"  promtool parsed all {len(queries)} panel expressions and {len(named) - len(queries)} "
        "variable selectors (variables substituted)")


# ----------------------------------------------------------------------------- live


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_http(url: str, proc: subprocess.Popen, what: str, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            http_get(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    raise CheckFailed(f"{what} did not answer {url} within {seconds}s:\n{log.read_text()[-3000:]}")


class PromAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"

    def query(self, expr: str) -> list:
        url = f"{self.base}/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = json.loads(http_get(url, timeout=15))
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise CheckFailed(f"query failed: {body.get('errorType')}: {body.get('error')}\n  {expr}")
        return body["data"]["result"]

    def exemplars(self, expr: str, seconds: int = 600) -> list[dict]:
        now = time.time()
        url = f"{self.base}/query_exemplars?" + urllib.parse.urlencode(
            {"query": expr, "start": f"{now - seconds:.3f}", "end": f"{now:.3f}"})
        body = json.loads(http_get(url, timeout=15))
        if body.get("status") != "success":
            raise CheckFailed(f"exemplar query failed: {body.get('error')}\n  {expr}")
        return [e for series in body["data"] for e in series.get("exemplars", [])]

    def rules(self) -> list[dict]:
        body = json.loads(http_get(f"{self.base}/rules"))
        return [r for g in body["data"]["groups"] for r in g["rules"]]


def load_allowlist() -> dict[str, str]:
    data = yaml.safe_load(ALLOWLIST.read_text()) or []
    out = {}
    for entry in data:
        if not entry.get("reason"):
            raise CheckFailed(f"{ALLOWLIST.name}: entry {entry} has no reason")
        out[entry["query"]] = entry["reason"]
    return out


def cmd_live(args) -> None:
    binary = Path(args.exporter_bin)
    if not os.access(binary, os.X_OK):
        raise CheckFailed(f"exporter binary {binary} not found or not executable "
                          "(build it with cargo build --release --locked, or set ENV0_EXPORTER_BIN)")
    allow = load_allowlist()
    dash = load_dashboard()
    rule_groups = [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]
    recording = [r["record"] for g in rule_groups for r in g["rules"] if "record" in r]
    alerts = [(r["alert"], r["expr"]) for g in rule_groups for r in g["rules"] if "alert" in r]

    work = Path(tempfile.mkdtemp(prefix="env0-live-"))
    exp_port, prom_port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": f"{args.scrape_interval}s",
                   "evaluation_interval": f"{args.scrape_interval}s"},
        "rule_files": [str(f) for f in RULE_FILES],
        "scrape_configs": [{"job_name": "env0-exporter",
                            "static_configs": [{"targets": [f"127.0.0.1:{exp_port}"]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    procs: list[subprocess.Popen] = []
    exp_log, prom_log = work / "exporter.log", work / "prometheus.log"
    try:
        demo_args = ["demo", "--listen-address", f"127.0.0.1:{exp_port}", *DEMO_ARGS]
        say(f"  starting {binary} {' '.join(demo_args)}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENV0_")}
        env.setdefault("RUST_LOG", "info")
        procs.append(subprocess.Popen(
            [str(binary), *demo_args],
            stdout=exp_log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True))
        wait_http(f"http://127.0.0.1:{exp_port}/-/healthy", procs[0], "exporter", 60, exp_log)
        say(f"  starting prometheus on 127.0.0.1:{prom_port}, scraping every {args.scrape_interval}s, "
            "recording and alert rules loaded, exemplar storage on")
        procs.append(subprocess.Popen(
            [args.prometheus, f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
             "--enable-feature=exemplar-storage", "--log.level=warn"],
            stdout=prom_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", procs[1], "prometheus", 60, prom_log)
        api = PromAPI(prom_port)

        pending: dict[str, str] = {}  # name -> expr still without data
        for label, ref, expr in panel_queries(dash):
            pending[f"{label} {ref}"] = expr
        for rec in recording:
            pending[f"recording rule {rec}"] = rec
        pending['scrape target up'] = 'up{job="env0-exporter"} == 1'
        total = len(pending)
        deadline = time.monotonic() + args.timeout
        start = time.monotonic()
        first_data: dict[str, float] = {}
        while True:
            for name, expr in list(pending.items()):
                # Data = at least one sample with a number: a quantile of an empty rate is NaN.
                if any(math.isfinite(float(r["value"][1])) for r in api.query(expr)):
                    del pending[name]
                    first_data[name] = time.monotonic() - start
            for p, what, log in ((procs[0], "exporter", exp_log), (procs[1], "prometheus", prom_log)):
                if p.poll() is not None:
                    raise CheckFailed(f"{what} exited with {p.returncode}:\n{log.read_text()[-3000:]}")
            waiting_on = [n for n in pending if n not in allow]
            if not waiting_on or time.monotonic() > deadline:
                break
            time.sleep(args.scrape_interval)
        elapsed = time.monotonic() - start
        say(f"  after {elapsed:.0f}s: {total - len(pending)} of {total} queries returned data")
        if first_data:
            last = max(first_data, key=first_data.get)
            say(f"  slowest to get data: {last} after {first_data[last]:.0f}s")

        check_live_exemplars(api, dash)

        # Alert expressions must evaluate; empty is fine (nothing is wrong in the demo).
        for name, expr in alerts:
            api.query(expr)
        bad_rules = [f"{r.get('name')}: {r.get('lastError')}" for r in api.rules()
                     if r.get("health") not in ("ok",)]
        if bad_rules:
            raise CheckFailed("rules unhealthy in Prometheus:\n  " + "\n  ".join(bad_rules))
        firing = [a["labels"]["alertname"] for a in json.loads(
            http_get(f"http://127.0.0.1:{prom_port}/api/v1/alerts"))["data"]["alerts"]]
        say(f"  all {len(alerts)} alert expressions evaluated without error; all "
            f"{len(recording) + len(alerts)} rules healthy; alerts pending/firing: {sorted(set(firing)) or 'none'}")

        empty_allowed = {n: allow[n] for n in pending if n in allow}
        for n, reason in empty_allowed.items():
            say(f"  allowed empty: {n} ({reason})")
        stale = sorted(n for n in allow if n not in pending)
        for n in stale:
            say(f"  note: allowlisted but returned data this run: {n}")
        unknown = sorted(n for n in allow if n not in {**dict.fromkeys(panel_names(dash)),
                                                       **{f"recording rule {r}": 1 for r in recording}})
        if unknown:
            raise CheckFailed(f"{ALLOWLIST.name} names queries that do not exist: {unknown}")
        missing = [f"{n}\n      {pending[n]}" for n in pending if n not in allow]
        if missing:
            raise CheckFailed("queries returned no data within "
                              f"{args.timeout}s (fix the query or allowlist it with a reason):\n    "
                              + "\n    ".join(missing))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if args.keep:
            say(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_live_exemplars(api: PromAPI, dash: dict) -> None:
    """Every target that asks for exemplars gets some from Prometheus (scraped in OpenMetrics,
    exemplar storage on), each naming an env0 run by the labels the data source link uses."""
    variables = {v["name"] for v in dash["templating"]["list"]}
    checked = 0
    for p in dash["panels"]:
        for t in p.get("targets", []):
            if not t.get("exemplar"):
                continue
            expr = substitute(t["expr"], variables)
            found = api.exemplars(expr)
            label = f'panel {p["id"]} "{p["title"]}" {t["refId"]}'
            if not found:
                raise CheckFailed(f"{label} asks for exemplars, Prometheus has none for it:\n  {expr}")
            bad = [e["labels"] for e in found if set(e["labels"]) != EXEMPLAR_LABELS
                   or not all(UUID_RE.match(v) for v in e["labels"].values())]
            if bad:
                raise CheckFailed(f"{label}: exemplars without the ids {sorted(EXEMPLAR_LABELS)}: {bad[:3]}")
            checked += 1
            say(f"  {label}: {len(found)} exemplars, each with {', '.join(sorted(EXEMPLAR_LABELS))} (env0 ids)")
    if not checked:
        raise CheckFailed("no dashboard target asks for exemplars")


def panel_names(dash: dict) -> list[str]:
    return [f'panel {p["id"]} "{p["title"]}" {t["refId"]}' for p in dash["panels"]
            for t in p.get("targets", [])]


# ----------------------------------------------------------------------------- helm

CORE_KINDS = {"Deployment", "StatefulSet", "Service", "Secret", "ServiceAccount", "ConfigMap", "Ingress",
              "PersistentVolumeClaim"}


def render_chart(helm, values: dict | None) -> list[dict]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name="env0", namespace="monitoring", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        try:
            docs.extend(d for d in yaml.safe_load_all(text) if d)
        except yaml.YAMLError as e:
            raise CheckFailed(f"{path} rendered as something that is not YAML: {e}") from None
    return docs


def expect(cond: bool, problems: list[str], msg: str) -> None:
    if not cond:
        problems.append(msg)


def container_env(deploy: dict) -> dict[str, dict]:
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in c.get("env", [])}


def check_rendered(name: str, values: dict, docs: list[dict], promtool: str) -> list[str]:
    """What each toggle must (and must not) produce."""
    p: list[str] = []
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    v = lambda *keys, default=None: _dig(values, keys, default)  # noqa: E731
    shards = int(v("shards", default=1) or 1)
    workload = "StatefulSet" if shards > 1 else "Deployment"
    other_workload = "Deployment" if shards > 1 else "StatefulSet"
    expect(len(kinds.get(workload, [])) == 1 and other_workload not in kinds, p,
           f"shards={shards} must render one {workload} and no {other_workload}")
    deploy = kinds[workload][0]
    pod = deploy["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c["securityContext"]
    expect(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532, p, "container not runAsNonRoot/65532")
    expect(sc.get("readOnlyRootFilesystem") is True, p, "root filesystem not read-only")
    expect(sc.get("allowPrivilegeEscalation") is False, p, "allowPrivilegeEscalation not false")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], p, "capabilities not drop ALL")
    expect(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", p, "seccomp not RuntimeDefault")
    expect(c["livenessProbe"]["httpGet"]["path"] == "/-/healthy", p, "liveness probe not /-/healthy")
    expect(c["readinessProbe"]["httpGet"]["path"] == "/-/ready", p, "readiness probe not /-/ready")
    args_text = " ".join(c.get("args", []))
    for secret_word in ("ci-secret", "ci-key", "--api-secret", "--api-key"):
        expect(secret_word not in args_text, p, f"credential {secret_word!r} in container args")
    env = container_env(deploy)
    demo = v("demo", default=False)
    webhook_on = bool(v("webhook", "enabled", default=False)) and not demo
    webhook_in_chart_secret = webhook_on and not v("webhook", "existingSecret", default="")
    expect(("demo" in c.get("args", [])) == bool(demo), p, "demo arg does not follow values.demo")
    existing = v("env0", "existingSecret", default="")
    secret_file = v("env0", "apiSecretFile", "enabled", default=False)
    if demo:
        expect("Secret" not in kinds, p, "demo renders a Secret")
        expect("ENV0_API_KEY" not in env, p, "demo passes ENV0_API_KEY")
    else:
        secret_name = existing or "env0-env0-exporter"
        expect(("Secret" in kinds) == (not existing or webhook_in_chart_secret), p,
               "Secret rendered iff no existingSecret, or the chart keeps the webhook secret")
        if existing and "Secret" in kinds:
            data = kinds["Secret"][0].get("data", {})
            expect(not {v("env0", "existingSecretKeys", "apiKey", default="ENV0_API_KEY"),
                        v("env0", "existingSecretKeys", "apiSecret", default="ENV0_API_SECRET")} & set(data), p,
                   "the chart's Secret holds credentials although env0.existingSecret is set")
        ref = env.get("ENV0_API_KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
        expect(ref.get("name") == secret_name, p, f"ENV0_API_KEY not from Secret {secret_name}")
        if secret_file:
            expect("ENV0_API_SECRET" not in env and "ENV0_API_SECRET_FILE" in env, p,
                   "secret file mode must set ENV0_API_SECRET_FILE and not ENV0_API_SECRET")
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            path = env["ENV0_API_SECRET_FILE"]["value"].rsplit("/", 1)[0] if "ENV0_API_SECRET_FILE" in env else ""
            expect(path in mounts and mounts[path].get("readOnly") is True, p, "secret file not mounted read-only")
            vols = [vol for vol in pod.get("volumes", []) if vol.get("secret", {}).get("secretName") == secret_name]
            expect(len(vols) == 1, p, "secret volume does not come from the credentials Secret")
        else:
            sref = env.get("ENV0_API_SECRET", {}).get("valueFrom", {}).get("secretKeyRef", {})
            expect(sref.get("name") == secret_name, p, f"ENV0_API_SECRET not from Secret {secret_name}")
        for e in env.values():
            expect(e.get("value") not in ("ci-secret",), p, f"secret value inline in env {e['name']}")
    for flag_env in ("ENV0_API_ENDPOINT", "ENV0_EXPORTER_LISTEN_ADDRESS", "ENV0_EXPORTER_POLL_INTERVAL",
                     "ENV0_EXPORTER_LOOKBACK", "ENV0_EXPORTER_FULL_SYNC_INTERVAL",
                     "ENV0_EXPORTER_MAX_REQUESTS_PER_MINUTE", "ENV0_EXPORTER_REQUEST_TIMEOUT",
                     "ENV0_EXPORTER_LOG_FORMAT", "RUST_LOG"):
        expect(flag_env in env, p, f"{flag_env} not set")
    for key, flag_env in (("deploymentTypes", "ENV0_EXPORTER_DEPLOYMENT_TYPES"),
                          ("statuses", "ENV0_EXPORTER_STATUSES"), ("userIds", "ENV0_EXPORTER_USER_IDS")):
        want = ",".join(v("exporter", key, default=[]))
        expect(env.get(flag_env, {}).get("value", "") == want, p, f"{flag_env} != {want!r}")
    buckets = ",".join(str(b) for b in v("exporter", "durationBuckets", default=[]))
    expect(env.get("ENV0_EXPORTER_DURATION_BUCKETS", {}).get("value", "") == buckets, p,
           f"ENV0_EXPORTER_DURATION_BUCKETS != {buckets!r}")
    expect(("ENV0_EXPORTER_ALLOW_UNKNOWN_FILTER_VALUES" in env)
           == bool(v("exporter", "allowUnknownFilterValues", default=False)), p,
           "ENV0_EXPORTER_ALLOW_UNKNOWN_FILTER_VALUES does not follow values")
    if v("env0", "organizationId", default=""):
        expect(env.get("ENV0_ORGANIZATION_ID", {}).get("value") == v("env0", "organizationId"), p,
               "ENV0_ORGANIZATION_ID not set from values")

    p += check_rendered_shards(values, kinds, deploy, c, env, shards)
    p += check_rendered_views(values, env)
    p += check_rendered_persistence(values, kinds, deploy, env, shards)
    svc = next(s for s in kinds["Service"] if s["metadata"]["name"] == "env0-env0-exporter")
    expect(svc["spec"]["ports"][0]["targetPort"] == "http", p, "service does not target port http")
    p += check_rendered_webhook(values, kinds, c, env, svc)
    p += check_rendered_web(values, kinds, c, env)
    sm_on = v("serviceMonitor", "enabled", default=False)
    expect(("ServiceMonitor" in kinds) == bool(sm_on), p, "ServiceMonitor rendered iff serviceMonitor.enabled")
    if sm_on:
        sm = kinds["ServiceMonitor"][0]
        expect(sm["apiVersion"] == "monitoring.coreos.com/v1", p, "ServiceMonitor apiVersion")
        sel = sm["spec"]["selector"]["matchLabels"]
        expect(all(svc["metadata"]["labels"].get(k) == val for k, val in sel.items()), p,
               "ServiceMonitor selector does not match the Service labels")
        expect(sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"], p,
               "ServiceMonitor endpoint port is not the Service's port name")
        for k, val in (v("serviceMonitor", "additionalLabels", default={}) or {}).items():
            expect(sm["metadata"]["labels"].get(k) == val, p, f"ServiceMonitor lacks additional label {k}")
        expect("env0" in svc["metadata"]["name"], p, "job label (Service name) lacks 'env0' (Env0ExporterDown)")
    pr_on = v("prometheusRule", "enabled", default=False)
    expect(("PrometheusRule" in kinds) == bool(pr_on), p, "PrometheusRule rendered iff prometheusRule.enabled")
    if pr_on:
        pr = kinds["PrometheusRule"][0]
        groups = pr["spec"]["groups"]
        want = []
        if v("prometheusRule", "recordingRules", default=True):
            want += yaml.safe_load(RULE_FILES[0].read_text())["groups"]
        if v("prometheusRule", "alerts", default=True):
            want += yaml.safe_load(RULE_FILES[1].read_text())["groups"]
        expect(groups == want, p, "PrometheusRule groups differ from rules/*.yml")
        for k, val in (v("prometheusRule", "additionalLabels", default={}) or {}).items():
            expect(pr["metadata"]["labels"].get(k) == val, p, f"PrometheusRule lacks additional label {k}")
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump({"groups": groups}, f)
        r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        expect(r.returncode == 0, p, f"promtool check rules on the PrometheusRule's groups:\n{r.stdout}{r.stderr}")
        if r.returncode == 0:
            say(f"    [{name}] PrometheusRule groups == rules/*.yml; promtool: {r.stdout.strip().splitlines()[-1].strip()}")
    gd_on = v("grafanaDashboard", "enabled", default=False)
    cms = [d for d in kinds.get("ConfigMap", []) if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    expect(bool(cms) == bool(gd_on), p, "dashboard ConfigMap rendered iff grafanaDashboard.enabled")
    if gd_on and cms:
        data = cms[0]["data"]["env0-exporter.json"]
        expect(json.loads(data) == load_dashboard(), p, "ConfigMap dashboard differs from dashboards/env0-exporter.json")
    return p


def check_rendered_shards(values: dict, kinds: dict, workload: dict, c: dict, env: dict,
                          shards: int) -> list[str]:
    """shards > 1: a StatefulSet of one pod per shard, each told its shard by its pod name
    (--shard <pod name>/M, POD_NAME first so that $(POD_NAME) expands), and one state volume per
    pod from a volumeClaimTemplate when persistence is on; a headless Service that names the pods,
    left out by the ServiceMonitor, and with webhooks the forwarding template through it.
    shards = 1: no shard at all."""
    p: list[str] = []
    names = [e["name"] for e in c.get("env", [])]
    headless = [s for s in kinds.get("Service", []) if s["metadata"]["name"] == "env0-env0-exporter-headless"]
    forward = env.get("ENV0_EXPORTER_WEBHOOK_FORWARD_URL_TEMPLATE", {}).get("value")
    if shards <= 1:
        expect("ENV0_EXPORTER_SHARD" not in env, p, "ENV0_EXPORTER_SHARD set without shards")
        expect(not headless, p, "a headless Service without shards")
        expect(forward is None, p, "ENV0_EXPORTER_WEBHOOK_FORWARD_URL_TEMPLATE set without shards")
        return p
    spec = workload["spec"]
    expect(spec.get("replicas") == shards, p, f"StatefulSet replicas {spec.get('replicas')} != shards {shards}")
    expect(spec.get("serviceName") == "env0-env0-exporter-headless", p,
           "StatefulSet serviceName is not the headless Service's")
    expect(len(headless) == 1, p, "no headless Service env0-env0-exporter-headless")
    if headless:
        hs = headless[0]
        expect(hs["spec"].get("clusterIP") == "None", p, "the headless Service has a cluster IP")
        expect(hs["spec"].get("selector") == spec["selector"]["matchLabels"], p,
               "the headless Service does not select the StatefulSet's pods")
        labels = hs["metadata"].get("labels", {})
        for sm in kinds.get("ServiceMonitor", []):
            sel = sm["spec"]["selector"]
            excluded = any(e.get("key") in labels and e.get("operator") == "NotIn"
                           and labels[e["key"]] in e.get("values", [])
                           for e in sel.get("matchExpressions", []))
            expect(excluded, p, "the ServiceMonitor also selects the headless Service: every pod scraped twice")
    webhook_on = bool(_dig(values, ("webhook", "enabled"), False)) and not _dig(values, ("demo",), False)
    if webhook_on:
        port = _dig(values, ("webhook", "port"), 0) or _dig(values, ("exporter", "port"), 19180)
        tls = not _dig(values, ("webhook", "port"), 0) and _dig(values, ("web", "tls", "secretName"), "")
        want = _dig(values, ("webhook", "forwardUrlTemplate"), "") or (
            f"{'https' if tls else 'http'}://env0-env0-exporter-{{ordinal}}"
            f".env0-env0-exporter-headless.monitoring.svc:{port}/webhooks/env0")
        expect(forward == want, p, f"ENV0_EXPORTER_WEBHOOK_FORWARD_URL_TEMPLATE {forward!r}, want {want!r}")
    else:
        expect(forward is None, p, "ENV0_EXPORTER_WEBHOOK_FORWARD_URL_TEMPLATE set without webhooks")
    expect(spec.get("podManagementPolicy") == "Parallel", p, "shards do not start in parallel")
    pod_name = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    expect(pod_name == "metadata.name", p, "POD_NAME not from the downward API's metadata.name")
    expect(env.get("ENV0_EXPORTER_SHARD", {}).get("value") == f"$(POD_NAME)/{shards}", p,
           f"ENV0_EXPORTER_SHARD is not $(POD_NAME)/{shards}")
    expect("POD_NAME" in names and "ENV0_EXPORTER_SHARD" in names
           and names.index("POD_NAME") < names.index("ENV0_EXPORTER_SHARD"), p,
           "POD_NAME must come before ENV0_EXPORTER_SHARD for $(POD_NAME) to expand")
    claims = spec.get("volumeClaimTemplates", [])
    if _dig(values, ("persistence", "enabled"), False):
        expect(len(claims) == 1 and claims[0]["metadata"]["name"] == "state", p, "no state volumeClaimTemplate")
        if claims:
            cs = claims[0]["spec"]
            expect(cs["resources"]["requests"]["storage"] == _dig(values, ("persistence", "size"), "256Mi"), p,
                   "state volume size is not persistence.size")
            sc = _dig(values, ("persistence", "storageClass"), "")
            expect(cs.get("storageClassName", "") == sc, p, "state volume class is not persistence.storageClass")
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        expect("state" in mounts and not mounts["state"].get("readOnly"), p, "state volume not mounted writable")
    else:
        expect(not claims, p, "volumeClaimTemplates without persistence.enabled")
    return p


def check_rendered_persistence(values: dict, kinds: dict, deploy: dict, env: dict, shards: int) -> list[str]:
    """persistence.*: a PVC (unless existingClaim) mounted at mountPath, --state-file in it, Recreate.
    With shards > 1 the volumes come from volumeClaimTemplates (check_rendered_shards): no PVC."""
    p: list[str] = []
    v = lambda *keys, default=None: _dig(values, keys, default)  # noqa: E731
    on = bool(v("persistence", "enabled", default=False))
    existing = v("persistence", "existingClaim", default="")
    mount = v("persistence", "mountPath", default="/var/lib/env0-exporter")
    expect(("PersistentVolumeClaim" in kinds) == (on and not existing and shards <= 1), p,
           "PersistentVolumeClaim rendered iff persistence.enabled without existingClaim, one pod")
    state_file = env.get("ENV0_EXPORTER_STATE_FILE", {}).get("value")
    expect(state_file == (f"{mount}/state.json.gz" if on else None), p,
           "ENV0_EXPORTER_STATE_FILE does not follow persistence.enabled/mountPath")
    if shards > 1:
        return p
    pod = deploy["spec"]["template"]["spec"]
    claims = [vol["persistentVolumeClaim"]["claimName"] for vol in pod.get("volumes", [])
              if "persistentVolumeClaim" in vol]
    mounts = [m["mountPath"] for m in pod["containers"][0].get("volumeMounts", [])]
    if on:
        want = existing or (kinds["PersistentVolumeClaim"][0]["metadata"]["name"]
                            if "PersistentVolumeClaim" in kinds else None)
        expect(claims == [want], p, f"the Deployment mounts claims {claims}, not [{want}]")
        expect(mount in mounts, p, f"nothing mounted at persistence.mountPath {mount}")
        expect(deploy["spec"].get("strategy", {}).get("type") == "Recreate", p,
               "a Deployment with a ReadWriteOnce state volume must use the Recreate strategy")
    else:
        expect(not claims, p, "a claim mounted without persistence.enabled")
    return p


def check_rendered_views(values: dict, env: dict) -> list[str]:
    """views.* and projects.* become the exporter's environment variables, exactly."""
    p: list[str] = []
    v = lambda *keys, default=None: _dig(values, keys, default)  # noqa: E731
    for key, flag_env in (("projectLabel", "ENV0_EXPORTER_PROJECT_LABEL"),
                          ("environmentMetrics", "ENV0_EXPORTER_ENVIRONMENT_METRICS")):
        want = "true" if v("views", key, default=False) else None
        expect(env.get(flag_env, {}).get("value") == want, p, f"{flag_env} is not {want!r} for views.{key}")
    want = str(v("views", "maxSeriesPerMetric", default=5000))
    expect(env.get("ENV0_EXPORTER_MAX_SERIES_PER_METRIC", {}).get("value") == want, p,
           f"ENV0_EXPORTER_MAX_SERIES_PER_METRIC != {want!r}")
    for key, flag_env in (("include", "ENV0_EXPORTER_PROJECTS"), ("exclude", "ENV0_EXPORTER_EXCLUDE_PROJECTS")):
        want = ",".join(v("projects", key, default=[])) or None
        expect(env.get(flag_env, {}).get("value") == want, p, f"{flag_env} != {want!r} (projects.{key})")
    return p


def check_rendered_web(values: dict, kinds: dict, c: dict, env: dict) -> list[str]:
    """web.*: the web config and the TLS Secret mounted as whole folders (a subPath mount never
    sees a rotated Secret), the flag pointing at the config, HTTPS probes and ServiceMonitor with
    TLS, and the scrape's TLS and basic-auth settings passed through."""
    p: list[str] = []
    v = lambda *keys, default=None: _dig(values, keys, default)  # noqa: E731
    config = v("web", "configSecret", default="")
    tls = v("web", "tls", "secretName", default="")
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    spec = (kinds.get("Deployment") or kinds["StatefulSet"])[0]["spec"]["template"]["spec"]
    volumes = {vol["name"]: vol for vol in spec.get("volumes", [])}
    expect(all("subPath" not in m for m in mounts.values()), p, "a volume mounted with subPath: rotation would not reach it")
    expect(env.get("ENV0_EXPORTER_WEB_MAX_CONNECTIONS", {}).get("value") == str(v("web", "maxConnections", default=256)),
           p, "ENV0_EXPORTER_WEB_MAX_CONNECTIONS does not follow web.maxConnections")
    want_file = "/etc/env0-exporter/web/web.yml" if config else None
    expect(env.get("ENV0_EXPORTER_WEB_CONFIG_FILE", {}).get("value") == want_file, p,
           f"ENV0_EXPORTER_WEB_CONFIG_FILE is not {want_file!r}")
    expect(("web-config" in mounts) == bool(config), p, "web-config mounted iff web.configSecret")
    if config:
        expect(volumes.get("web-config", {}).get("secret", {}).get("secretName") == config, p,
               f"web-config volume not from the Secret {config}")
        expect(mounts["web-config"]["mountPath"] == "/etc/env0-exporter/web", p, "web config not in /etc/env0-exporter/web")
    expect(("web-tls" in mounts) == bool(tls), p, "web-tls mounted iff web.tls.secretName")
    if tls:
        expect(volumes.get("web-tls", {}).get("secret", {}).get("secretName") == tls, p,
               f"web-tls volume not from the Secret {tls}")
    scheme = "HTTPS" if tls else None
    for probe in ("livenessProbe", "readinessProbe"):
        expect(c.get(probe, {}).get("httpGet", {}).get("scheme") == scheme, p, f"{probe} scheme is not {scheme}")
    for sm in kinds.get("ServiceMonitor", []):
        ep = sm["spec"]["endpoints"][0]
        expect(ep.get("scheme") == ("https" if tls else None), p, "ServiceMonitor scheme does not follow web.tls")
        expect(ep.get("tlsConfig") == (v("serviceMonitor", "tlsConfig", default={}) or None), p,
               "ServiceMonitor tlsConfig does not follow serviceMonitor.tlsConfig")
        expect(ep.get("basicAuth") == (v("serviceMonitor", "basicAuth", default={}) or None), p,
               "ServiceMonitor basicAuth does not follow serviceMonitor.basicAuth")
    return p


def check_rendered_webhook(values: dict, kinds: dict, c: dict, env: dict, svc: dict) -> list[str]:
    """webhook.*: the secret only through a secretKeyRef (never in args or a plain value), the own
    port on the container and the Service, and an Ingress that routes the webhook path only."""
    p: list[str] = []
    v = lambda *keys, default=None: _dig(values, keys, default)  # noqa: E731
    on = bool(v("webhook", "enabled", default=False)) and not v("demo", default=False)
    port = v("webhook", "port", default=0) if on else 0
    key = v("webhook", "existingSecretKey", default="ENV0_EXPORTER_WEBHOOK_SECRET")
    existing = v("webhook", "existingSecret", default="")
    secret_value = v("webhook", "secret", default="")
    ref = env.get("ENV0_EXPORTER_WEBHOOK_SECRET", {}).get("valueFrom", {}).get("secretKeyRef", {})
    expect(bool(ref) == on, p, "ENV0_EXPORTER_WEBHOOK_SECRET from a secretKeyRef iff webhook.enabled")
    expect("value" not in env.get("ENV0_EXPORTER_WEBHOOK_SECRET", {}), p, "webhook secret as a plain env value")
    args_text = " ".join(c.get("args", []))
    expect("--webhook-secret" not in args_text and (not secret_value or secret_value not in args_text), p,
           "webhook secret in container args")
    expect(all(e.get("value") != secret_value for e in env.values()) or not secret_value, p,
           "webhook secret inline in an env value")
    if on:
        want_name = existing or "env0-env0-exporter"
        expect(ref.get("name") == want_name and ref.get("key") == key, p,
               f"ENV0_EXPORTER_WEBHOOK_SECRET not from {want_name}/{key}")
        if not existing:
            data = kinds.get("Secret", [{}])[0].get("data", {})
            import base64
            expect(base64.b64decode(data.get(key, "")).decode() == secret_value, p,
                   f"the chart's Secret does not hold webhook.secret under {key}")
    listen = env.get("ENV0_EXPORTER_WEBHOOK_LISTEN_ADDRESS", {}).get("value")
    expect(listen == (f"0.0.0.0:{port}" if port else None), p,
           f"ENV0_EXPORTER_WEBHOOK_LISTEN_ADDRESS {listen!r} does not follow webhook.port {port}")
    cports = {cp["name"]: cp["containerPort"] for cp in c.get("ports", [])}
    sports = {sp["name"]: sp for sp in svc["spec"]["ports"]}
    if port:
        expect(cports.get("webhook") == port, p, f"no container port webhook = {port}")
        expect(sports.get("webhook", {}).get("port") == port and sports["webhook"].get("targetPort") == "webhook",
               p, f"no Service port webhook = {port} targeting the container's webhook port")
    else:
        expect("webhook" not in cports and "webhook" not in sports, p, "a webhook port without webhook.port")
    ing_on = on and v("webhook", "ingress", "enabled", default=False)
    expect(("Ingress" in kinds) == bool(ing_on), p, "Ingress rendered iff webhook.enabled and webhook.ingress.enabled")
    if ing_on and "Ingress" in kinds:
        ing = kinds["Ingress"][0]
        rules = ing["spec"]["rules"]
        paths = [path for r in rules for path in r["http"]["paths"]]
        expect(len(rules) == 1 and len(paths) == 1 and paths[0]["path"] == "/webhooks/env0"
               and paths[0]["pathType"] == "Exact", p, "the Ingress routes more than /webhooks/env0 (Exact)")
        backend = paths[0]["backend"]["service"] if paths else {}
        expect(backend.get("name") == svc["metadata"]["name"], p, "the Ingress backend is not the chart's Service")
        expect(backend.get("port", {}).get("name") == ("webhook" if port else "http"), p,
               "the Ingress backend port is not the webhook's (webhook with webhook.port, else http)")
        expect(backend.get("port", {}).get("name") in sports, p, "the Ingress backend port is no Service port")
        host = v("webhook", "ingress", "host", default="")
        expect(rules[0].get("host") == (host or None), p, f"Ingress host is not {host!r}")
        expect(ing["spec"].get("ingressClassName") == (v("webhook", "ingress", "className", default="") or None), p,
               "Ingress class does not follow webhook.ingress.className")
        expect(ing["spec"].get("tls") == (v("webhook", "ingress", "tls", default=[]) or None), p,
               "Ingress tls does not follow webhook.ingress.tls")
    return p


def _dig(d, keys, default):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def kubernetes_validate(kv: str, docs: list[dict], label: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(docs, f)
    r = subprocess.run([kv, "--strict", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode != 0 or "WARN" in r.stdout + r.stderr:
        raise CheckFailed(f"kubernetes-validate --strict failed for {label}:\n{r.stdout}{r.stderr}")
    return r.stdout


# The chart must refuse these values (the exporter would exit 2 at every start), naming what to set.
REFUSED_VALUES = [
    ("defaults", None),
    ("apiKey without apiSecret", {"env0": {"apiKey": "ci-key"}}),
    ("apiSecret without apiKey", {"env0": {"apiSecret": "ci-secret"}}),
    ("empty existingSecret, secret file on", {"env0": {"existingSecret": "", "apiSecretFile": {"enabled": True}}}),
]
# Shard values that cannot work: (case, values, words the message must contain).
REFUSED_SHARD_VALUES = [
    ("shards with replicas", {"env0": {"apiKey": "ci-key", "apiSecret": "ci-secret"},
                              "shards": 3, "replicaCount": 2},
     ["replicaCount", "shards"]),
    ("shards sharing one claim", {"env0": {"apiKey": "ci-key", "apiSecret": "ci-secret"}, "shards": 3,
                                  "persistence": {"enabled": True, "existingClaim": "state"}},
     ["persistence.existingClaim", "shards"]),
]
REFUSAL_NAMES = ["env0.apiKey", "env0.apiSecret", "env0.existingSecret", "demo=true"]
# Webhook values that cannot work: (case, values, words the message must contain).
_CREDS = {"env0": {"apiKey": "ci-key", "apiSecret": "ci-secret"}}
REFUSED_WEBHOOK_VALUES = [
    ("webhook without a secret", {**_CREDS, "webhook": {"enabled": True}},
     ["webhook.secret", "webhook.existingSecret"]),
    ("webhook Ingress without webhook", {**_CREDS, "webhook": {"ingress": {"enabled": True}}},
     ["webhook.ingress.enabled", "webhook.enabled"]),
    ("webhook with demo", {"demo": True, "webhook": {"enabled": True, "secret": "s"}},
     ["webhook.enabled", "demo=true"]),
    ("webhook port = exporter port", {**_CREDS, "webhook": {"enabled": True, "secret": "s", "port": 19180}},
     ["webhook.port", "exporter.port"]),
    ("webhook key = credential key", {**_CREDS, "webhook": {"enabled": True, "secret": "s",
                                                              "existingSecretKey": "ENV0_API_KEY"}},
     ["webhook.existingSecretKey", "env0.existingSecretKeys"]),
]


def check_refusals(helm) -> list[str]:
    """Rendering fails, with a message naming every way out, for each of REFUSED_VALUES and
    REFUSED_WEBHOOK_VALUES."""
    problems = []
    for name, values, words in REFUSED_WEBHOOK_VALUES + REFUSED_SHARD_VALUES:
        try:
            render_chart(helm, values)
        except helm.HelmError as e:
            missing = [w for w in words if w not in str(e)]
            if missing:
                problems.append(f"[{name}] render failed, but the message lacks {missing}: {e}")
            else:
                say(f"    [{name}] refused as it must: {str(e).split(': ', 1)[-1][:90]}...")
        except CheckFailed as e:
            problems.append(f"[{name}] rendered, and not even as YAML: {e}")
        else:
            problems.append(f"[{name}] rendered: these values could not work")
    for name, values in REFUSED_VALUES:
        try:
            render_chart(helm, values)
        except helm.HelmError as e:
            msg = str(e)
            missing = [n for n in REFUSAL_NAMES if n not in msg]
            if "needs env0 credentials" not in msg or missing:
                problems.append(f"[{name}] render failed, but not with the credentials message "
                                f"(missing {missing}): {msg}")
            else:
                say(f"    [{name}] refused as it must: {msg.split(': ', 1)[-1][:90]}...")
        else:
            problems.append(f"[{name}] rendered without credentials: the exporter would crash-loop")
    return problems


def _org_repo(url: str) -> str | None:
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", url or "")
    return m.group(1) if m else None


def check_chart_metadata() -> list[str]:
    """Chart.yaml's home, sources, maintainers and Artifact Hub annotations, and one image story:
    the image the chart defaults to is ghcr.io/<the repository of home>:<appVersion>, and Artifact
    Hub's images annotation says the same."""
    p: list[str] = []
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    repo = _org_repo(chart.get("home", ""))
    expect(repo is not None, p, f"Chart.yaml home {chart.get('home')!r} is not https://github.com/<org>/<repo>")
    expect(chart.get("home") in (chart.get("sources") or []), p, "Chart.yaml sources does not list home")
    expect(all(m.get("name") for m in chart.get("maintainers") or [{}]), p, "Chart.yaml maintainers missing or unnamed")
    ann = chart.get("annotations") or {}
    expect(ann.get("artifacthub.io/license") == "Apache-2.0", p, "artifacthub.io/license is not Apache-2.0")
    parsed = {}
    for key, fields in (("artifacthub.io/links", ("name", "url")), ("artifacthub.io/images", ("name", "image")),
                        ("artifacthub.io/changes", ("kind", "description"))):
        try:
            items = yaml.safe_load(ann.get(key, ""))
        except yaml.YAMLError as e:
            p.append(f"{key} is not YAML: {e}")
            continue
        if not isinstance(items, list) or not items or not all(
                isinstance(i, dict) and all(isinstance(i.get(f), str) and i[f] for f in fields) for i in items):
            p.append(f"{key} must be a YAML list of {{{', '.join(fields)}}}")
            continue
        parsed[key] = items
    kinds = {"added", "changed", "deprecated", "removed", "fixed", "security"}
    for change in parsed.get("artifacthub.io/changes", []):
        expect(change["kind"] in kinds, p, f"artifacthub.io/changes kind {change['kind']!r} not one of {sorted(kinds)}")
    for link in parsed.get("artifacthub.io/links", []):
        expect(link["url"].startswith(chart.get("home", "?")), p, f"link {link['url']} is not under home")
    if repo:
        want_repo = f"ghcr.io/{repo}"
        want_image = f"{want_repo}:{chart['appVersion']}"
        expect(values["image"]["repository"] == want_repo, p,
               f"values image.repository {values['image']['repository']!r} is not {want_repo!r} (from Chart.yaml home)")
        expect(values["image"]["tag"] in ("", chart["appVersion"]), p, "values image.tag is neither empty nor appVersion")
        images = [i["image"] for i in parsed.get("artifacthub.io/images", [])]
        expect(images == [want_image], p, f"artifacthub.io/images {images} is not [{want_image!r}]")
        m = re.search(r"^ARG SOURCE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
        expect(bool(m) and m.group(1) == chart["home"], p,
               f"Dockerfile's ARG SOURCE ({m.group(1) if m else None}) is not Chart.yaml's home")
    if not p:
        say(f"    Chart.yaml: home {chart['home']}, Artifact Hub annotations parse, image "
            f"{values['image']['repository']}:{chart['appVersion']} everywhere")
    return p


def cmd_helm(args) -> None:
    import helm_python as helm

    # The validator must reject what it should, or its passes mean nothing.
    canary = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
               "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}}}]
    try:
        kubernetes_validate(args.kubernetes_validate, canary, "canary")
    except CheckFailed:
        say("  kubernetes-validate --strict rejects a Deployment with an unknown field (canary)")
    else:
        raise CheckFailed("kubernetes-validate --strict accepted an invalid Deployment: cannot trust it")
    with helm.Chart.load(str(CHART)) as chart:
        try:
            chart.validate_schema({"exporter": {"logFormat": "xml"}})
        except helm.HelmError:
            say("  values.schema.json rejects exporter.logFormat=xml (schema is enforced)")
        else:
            raise CheckFailed("values.schema.json accepted exporter.logFormat=xml")

    problems: list[str] = check_refusals(helm)
    problems += check_chart_metadata()
    cases = [(f.name, yaml.safe_load(f.read_text())) for f in sorted((CHART / "ci").glob("*-values.yaml"))]
    if len(cases) < 6:
        raise CheckFailed("expected ci/*-values.yaml for all-on, all-off, demo, existing-secret, secret-file, "
                          "webhook-existing-secret")
    seen_kinds: set[str] = set()
    for name, values in cases:
        report = helm.lint(str(CHART), values, strict=True)
        msgs = [m for m in report["messages"] if m["severity"] >= 2] + \
               [{"severity": 3, "path": "", "error": e} for e in report.get("errors", [])]
        if msgs:
            problems.append(f"[{name}] helm lint --strict: {msgs}")
            continue
        docs = render_chart(helm, values)
        kinds = sorted(d["kind"] for d in docs)
        seen_kinds.update(kinds)
        core = [d for d in docs if d["kind"] in CORE_KINDS]
        other = [d["kind"] for d in docs if d["kind"] not in CORE_KINDS | {"ServiceMonitor", "PrometheusRule"}]
        if other:
            problems.append(f"[{name}] unexpected kinds {other}")
        kubernetes_validate(args.kubernetes_validate, core, name)
        found = check_rendered(name, values or {}, docs, args.promtool)
        problems.extend(f"[{name}] {m}" for m in found)
        say(f"    [{name}] lint ok; rendered {', '.join(kinds)}; {len(core)} core objects pass "
            f"kubernetes-validate --strict; toggles checked" + ("" if not found else f" -- {len(found)} problems"))
    for kind in ("Secret", "ServiceMonitor", "PrometheusRule", "ConfigMap", "ServiceAccount", "Ingress"):
        if kind not in seen_kinds:
            problems.append(f"no ci values file renders a {kind}")
    if problems:
        raise CheckFailed("helm chart:\n  " + "\n  ".join(problems))


# ----------------------------------------------------------------------------- runbook

RUNBOOK = ROOT / "docs" / "runbook.md"


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors() -> tuple[set[str], list[str]]:
    """Anchors of every heading of docs/runbook.md (GitHub numbers repeats: -1, -2), and the
    titles of its second-level sections."""
    anchors: set[str] = set()
    sections = []
    in_code = False
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^(#{1,6}) +(.+?) *#*$", line)
        if not m:
            continue
        base = anchor = github_anchor(m.group(2))
        n = 0
        while anchor in anchors:
            n += 1
            anchor = f"{base}-{n}"
        anchors.add(anchor)
        if len(m.group(1)) == 2:
            sections.append(m.group(2))
    return anchors, sections


def runbook_base() -> str:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return f"{chart['home']}/blob/main/docs/runbook.md"


def cmd_runbook(args) -> None:
    """Every alert has a runbook_url to its own section of docs/runbook.md on the project's hosted
    repository (Chart.yaml's home); the dashboard links to the same page; no link points at a
    heading that does not exist."""
    base = runbook_base()
    anchors, sections = runbook_anchors()
    problems = []
    alerts = []
    for f in sorted((ROOT / "rules").glob("*.yml")):
        for group in yaml.safe_load(f.read_text()).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    alerts.append((f.name, rule))
    if not alerts:
        problems.append("no alert rules found in rules/*.yml")
    for fname, rule in alerts:
        name = rule["alert"]
        url = (rule.get("annotations") or {}).get("runbook_url")
        where = f"{fname}: {name}"
        if not url:
            problems.append(f"{where} has no runbook_url annotation")
            continue
        page, _, anchor = url.partition("#")
        if page != base:
            problems.append(f"{where}: runbook_url {url} is not {base}#...")
        elif anchor not in anchors:
            problems.append(f"{where}: runbook_url anchor #{anchor} is no heading of docs/runbook.md")
        elif anchor != github_anchor(name):
            problems.append(f"{where}: runbook_url points at #{anchor}, not at its own section #{github_anchor(name)}")
    names = {rule["alert"] for _, rule in alerts}
    extra = [s for s in sections if s not in names]
    if extra:
        problems.append(f"docs/runbook.md sections that are no alert: {extra}")
    for m in re.finditer(r"\]\(#([\w-]+)\)", RUNBOOK.read_text()):
        if m.group(1) not in anchors:
            problems.append(f"docs/runbook.md links to #{m.group(1)}, which is no heading")
    dash = load_dashboard()
    if not any(link.get("url") == base for link in dash.get("links", [])):
        problems.append(f"the dashboard has no dashboard-level link to {base}")
    panel_links = 0
    for p in dash["panels"]:
        for link in p.get("links", []):
            page, _, anchor = link.get("url", "").partition("#")
            if page == base:
                panel_links += 1
                if anchor not in anchors:
                    problems.append(f'panel {p["id"]} "{p["title"]}": runbook link anchor #{anchor} is no heading')
    if problems:
        raise CheckFailed("runbook links:\n  " + "\n  ".join(problems))
    say(f"  all {len(alerts)} alerts link their own section of docs/runbook.md under {base}; "
        f"the dashboard links the runbook, and {panel_links} panel links resolve")


# ----------------------------------------------------------------------------- quickstart


def cmd_quickstart(args) -> None:
    import quickstart_check

    try:
        quickstart_check.check(args.compose, args.promtool, args.amtool, say)
    except quickstart_check.QuickstartError as e:
        raise CheckFailed(str(e)) from None


# ----------------------------------------------------------------------------- sync


def cmd_sync(args) -> None:
    drift = []
    for copy, source in CHART_COPIES.items():
        if args.write:
            shutil.copyfile(source, copy)
            say(f"  copied {source.relative_to(ROOT)} -> {copy.relative_to(ROOT)}")
        elif not copy.exists() or copy.read_bytes() != source.read_bytes():
            drift.append(f"{copy.relative_to(ROOT)} differs from {source.relative_to(ROOT)}")
    if drift:
        raise CheckFailed("chart copies drifted (run scripts/check-bundle.sh --sync):\n  " + "\n  ".join(drift))
    if not args.write:
        say(f"  chart copies identical to their sources: {', '.join(c.name for c in CHART_COPIES)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dashboard")
    d.add_argument("--promtool", required=True)
    lv = sub.add_parser("live")
    lv.add_argument("--promtool", required=True)
    lv.add_argument("--prometheus", required=True)
    lv.add_argument("--exporter-bin", required=True)
    lv.add_argument("--scrape-interval", type=int, default=5)
    lv.add_argument("--timeout", type=int, default=180, help="seconds to wait for data")
    lv.add_argument("--keep", action="store_true", help="keep the temporary folder with logs")
    h = sub.add_parser("helm")
    h.add_argument("--promtool", required=True)
    h.add_argument("--kubernetes-validate", required=True)
    sub.add_parser("runbook")
    q = sub.add_parser("quickstart")
    q.add_argument("--compose", required=True, help="the docker-compose (v2) binary")
    q.add_argument("--promtool", required=True)
    q.add_argument("--amtool", required=True)
    s = sub.add_parser("sync")
    s.add_argument("--write", action="store_true")
    args = ap.parse_args()
    try:
        {"dashboard": cmd_dashboard, "live": cmd_live, "helm": cmd_helm, "runbook": cmd_runbook,
         "quickstart": cmd_quickstart, "sync": cmd_sync}[args.cmd](args)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
