#!/usr/bin/env python3
"""Generates dashboards/env0-exporter.json, the env0-exporter Grafana dashboard.

The JSON is the artifact users import; this script only keeps it consistent (ids, grid,
datasource on every panel and target, filters in every query). After editing, run

    python3 dashboards/generate.py            # rewrite the JSON
    python3 dashboards/generate.py --check    # exit 1 if the JSON is not what this script makes

scripts/check-bundle.sh runs the --check form.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("env0-exporter.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
# The alert runbook on the project's hosted repository (the same page as the alerts' runbook_url).
RUNBOOK = "https://github.com/env0-exporter/env0-exporter/blob/main/docs/runbook.md"

# Label filters. Every dashboard variable is matched with =~ so that "All" (.*) works.
EXP = 'job=~"$job", instance=~"$instance"'
# `project` exists only with --project-label: project=~".*" (All) also matches series without it.
PROJ = 'project=~"$project"'
# The families of deployments carry deployment_type, iac_tool and (opt-in) project.
DEP = EXP + ', deployment_type=~"$deployment_type", iac_tool=~"$iac_tool", ' + PROJ
DEP_T = DEP + ', trigger=~"$trigger"'
# Families without deployment_type (drift detections, time to restore).
TOOL = EXP + ', iac_tool=~"$iac_tool", ' + PROJ
FAILED = 'status=~"FAILURE|TIMEOUT|INTERNAL_FAILURE"'
CONCLUSIVE = 'status=~"SUCCESS|FAILURE|TIMEOUT|INTERNAL_FAILURE"'
# env0's page of an environment, from the labels of the environment view (--environment-metrics).
ENV0_ENVIRONMENT_URL = ("https://app.env0.com/p/${__data.fields.project_id}"
                        "/environments/${__data.fields.environment_id}")


class Layout:
    """Hands out panel ids and grid positions, row by row, 24 columns wide.

    Panels of the first release get ids in the order they are built (1..38); panels added since
    pass `pid=` (39 and up), so that adding a panel never renumbers the others (links with
    ?viewPanel=N, the live check's allowlist)."""

    def __init__(self) -> None:
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str, pid: int | None = None) -> dict:
        self._newline()
        panel = {
            "type": "row",
            "id": pid or self._id(),
            "title": title,
            "collapsed": False,
            "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
        }
        self.y += 1
        return panel

    def place(self, w: int, h: int, pid: int | None = None) -> tuple[int, dict]:
        if self.x + w > 24:
            self._newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pid or self._id(), pos

    def _newline(self) -> None:
        self.y += self.row_h
        self.x = 0
        self.row_h = 0


L = Layout()


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           exemplar: bool = False, table: bool = False) -> dict:
    t = {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }
    if table:
        # One frame with a column per label and one row per series (an instant query's default,
        # a frame per series, would make the table show one series at a time).
        t["format"] = "table"
    if exemplar:
        # Exemplars of the histogram's buckets: the latest env0 run each bucket counted
        # (OpenMetrics scrape, Prometheus --enable-feature=exemplar-storage). The data source's
        # exemplar link (label `deployment`) opens the run in env0: docs/monitoring.md.
        t["exemplar"] = True
    return t


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict],
    *,
    w: int = 12,
    h: int = 8,
    unit: str = "short",
    steps: dict = GREEN,
    min_: float | None = None,
    max_: float | None = None,
    no_value: str | None = None,
    options: dict | None = None,
    custom: dict | None = None,
    mappings: list | None = None,
    overrides: list | None = None,
    alert: str | None = None,
    pid: int | None = None,
) -> dict:
    pid, pos = L.place(w, h, pid)
    defaults: dict = {"unit": unit, "thresholds": steps, "color": {"mode": "palette-classic"}}
    if kind in ("stat", "gauge", "bargauge"):
        defaults["color"] = {"mode": "thresholds"}
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if no_value is not None:
        defaults["noValue"] = no_value
    if custom:
        defaults["custom"] = custom
    if mappings:
        defaults["mappings"] = mappings
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    p = {
        "type": kind,
        "id": pid,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": pos,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": targets,
    }
    if alert:
        # The alert that watches what the panel shows: named in the description, its runbook
        # section one click away in the panel's links.
        p["description"] = f"{description} Alert: {alert} (runbook in the panel's links)."
        p["links"] = [{"title": f"Runbook: {alert}", "url": f"{RUNBOOK}#{alert.lower()}", "targetBlank": True}]
    return p


def timeseries(title, description, targets, *, stack=False, bars=False, legend_bottom=False, **kw) -> dict:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    options = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                   "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    if legend_bottom:
        options["legend"] = {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}
    return panel("timeseries", title, description, targets, custom=custom, options=options, **kw)


def stat(title, description, targets, **kw) -> dict:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "textMode": "auto",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    kw.setdefault("w", 6)
    kw.setdefault("h", 5)
    return panel("stat", title, description, targets, options=options, **kw)


def bargauge(title, description, targets, **kw) -> dict:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
    }
    return panel("bargauge", title, description, targets, options=options, **kw)


def quantiles(metric: str, by: str, filters: str, qs=(0.5, 0.9, 0.99), window: str = "$__rate_interval",
              exemplar: bool = False) -> list[dict]:
    """One target per quantile. With exemplar=True the first target asks for the exemplars (one
    query is enough: every quantile reads the same bucket series, so more would repeat them)."""
    group = f"{by}, le" if by else "le"
    return [
        target(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{filters}}}[{window}])))",
            f"p{round(q * 100)} {{{{{by}}}}}" if by else f"p{round(q * 100)}",
            exemplar=exemplar and i == 0,
        )
        for i, q in enumerate(qs)
    ]


def status_color(status: str, color: str) -> dict:
    return {
        "matcher": {"id": "byName", "options": status},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


STATUS_COLORS = [
    status_color("SUCCESS", "green"),
    status_color("FAILURE", "red"),
    status_color("INTERNAL_FAILURE", "dark-red"),
    status_color("TIMEOUT", "orange"),
    status_color("CANCELLED", "text"),
    status_color("ABORTED", "purple"),
]
DRIFT_COLORS = [
    status_color("OK", "green"),
    status_color("DRIFTED", "red"),
    status_color("ERROR", "orange"),
    status_color("NEVER_RUN", "text"),
    status_color("DISABLED", "blue"),
]
RATIO_STEPS = thresholds((None, "green"), (0.1, "orange"), (0.25, "red"))
ACTION_COLORS = [
    status_color("added", "green"),
    status_color("changed", "blue"),
    status_color("destroyed", "red"),
    status_color("imported", "purple"),
]
DRIFT_RESULT_COLORS = [
    status_color("clean", "green"),
    status_color("drifted", "red"),
    status_color("failed", "orange"),
]
WEBHOOK_COLORS = [
    status_color("accepted", "green"),
    status_color("duplicate", "blue"),
    status_color("ignored", "text"),
    status_color("bad_signature", "red"),
    status_color("bad_request", "orange"),
]


def unfinished_count(status: str, label: str, steps: dict) -> dict:
    return stat(
        f"{label} now",
        f"env0 deployments in status {status} now, within the filters. No series means none.",
        [target(f'sum(env0_deployments{{{DEP_T}, status="{status}"}})', label, instant=True)],
        steps=steps,
        no_value="0",
    )


def build_panels() -> list[dict]:
    p: list[dict] = []

    p.append(L.row("Deployments"))
    p.append(timeseries(
        "Deployments finished per hour by status",
        "Deployments that reached a finished status, as an hourly rate. Counted by the exporter "
        "since it started, each deployment once.",
        [target(f"sum by (status) (rate(env0_deployments_finished_total{{{DEP_T}}}[$__rate_interval])) * 3600",
                "{{status}}")],
        stack=True, bars=True, unit="short", overrides=STATUS_COLORS, w=12,
    ))
    p.append(timeseries(
        "Deployments finished per hour by trigger",
        "Finished deployments per hour by what started them (user, workflow, terraform-cli, ...).",
        [target(f"sum by (trigger) (rate(env0_deployments_finished_total{{{DEP_T}}}[$__rate_interval])) * 3600",
                "{{trigger}}")],
        stack=True, unit="short", w=12,
    ))
    p.append(timeseries(
        "Failure ratio by deployment type (1h)",
        "Share of conclusive runs (SUCCESS, FAILURE, TIMEOUT, INTERNAL_FAILURE) that failed over "
        "the last hour, from the recording rule deployment_type:env0_deployments_failed:ratio_rate1h. "
        "The alert Env0DeploymentFailureRatioHigh fires above 25% with at least 10 runs.",
        [target('deployment_type:env0_deployments_failed:ratio_rate1h'
                '{job=~"$job", deployment_type=~"$deployment_type"}', "{{deployment_type}}")],
        unit="percentunit", min_=0, max_=1, steps=RATIO_STEPS, w=12,
        alert="Env0DeploymentFailureRatioHigh",
    ))
    p.append(timeseries(
        "Failure ratio by IaC tool (1h)",
        "Share of conclusive runs that failed over the last hour, by IaC tool, from the recording "
        "rule iac_tool:env0_deployments_failed:ratio_rate1h.",
        [target('iac_tool:env0_deployments_failed:ratio_rate1h{job=~"$job", iac_tool=~"$iac_tool"}',
                "{{iac_tool}}")],
        unit="percentunit", min_=0, max_=1, steps=RATIO_STEPS, w=12,
    ))
    p.append(bargauge(
        "Deployments in the lookback window by status",
        "Deployments created within the exporter's lookback window (default 24h), plus older "
        "unfinished ones, by their current status.",
        [target(f"sum by (status) (env0_deployments{{{DEP_T}}})", "{{status}}", instant=True)],
        unit="short", overrides=STATUS_COLORS, w=12,
    ))
    p.append(bargauge(
        "Deployments in the lookback window by trigger",
        "Deployments created within the lookback window by what started them.",
        [target(f"sum by (trigger) (env0_deployments{{{DEP_T}}})", "{{trigger}}", instant=True)],
        unit="short", w=12,
    ))
    p.append(timeseries(
        "Deployments finished per hour by project",
        "Finished deployments per hour by env0 project. Needs the exporter's --project-label "
        "(chart: views.projectLabel); without it, one unnamed series with the total. Projects past "
        "--max-series-per-metric share project=\"other\".",
        [target(f"sum by (project) (rate(env0_deployments_finished_total{{{DEP_T}}}[$__rate_interval])) * 3600",
                "{{project}}")],
        stack=True, unit="short", w=12, pid=39,
    ))
    p.append(timeseries(
        "Failure ratio by project (1h)",
        "Share of conclusive runs that failed over the last hour, by project, from the recording "
        "rule project:env0_deployments_failed:ratio_rate1h. Needs --project-label (chart: "
        "views.projectLabel); without it, one unnamed series for all projects.",
        [target('project:env0_deployments_failed:ratio_rate1h{job=~"$job", project=~"$project"}',
                "{{project}}")],
        unit="percentunit", min_=0, max_=1, steps=RATIO_STEPS, w=12, pid=40,
    ))

    p.append(L.row("Durations"))
    dur_f = DEP
    exemplars = (" Exemplars (the stars) are single env0 runs: with the data source's exemplar link set "
                 "(docs/monitoring.md, label `deployment`) a click opens the run in env0.")
    p.append(timeseries(
        "Run duration p50/p90/p99 by deployment type",
        "finishedAt - startedAt of deployments that finished in the interval, from the "
        "env0_deployment_duration_seconds histogram." + exemplars,
        quantiles("env0_deployment_duration_seconds", "deployment_type", dur_f, exemplar=True), unit="s", w=12,
    ))
    p.append(timeseries(
        "Run duration p50/p90/p99 by IaC tool",
        "finishedAt - startedAt by IaC tool, from the env0_deployment_duration_seconds histogram." + exemplars,
        quantiles("env0_deployment_duration_seconds", "iac_tool", dur_f, exemplar=True), unit="s", w=12,
    ))
    p.append(timeseries(
        "Queue wait p50/p90/p99 by deployment type",
        "startedAt - queuedAt: how long deployments waited for an agent or a concurrency slot." + exemplars,
        quantiles("env0_deployment_queue_duration_seconds", "deployment_type", dur_f, exemplar=True),
        unit="s", w=12,
    ))
    p.append(bargauge(
        "Run duration p90 over the last hour by deployment type",
        "From the recording rule deployment_type:env0_deployment_duration_seconds:p90_1h.",
        [target('deployment_type:env0_deployment_duration_seconds:p90_1h'
                '{job=~"$job", deployment_type=~"$deployment_type"}', "{{deployment_type}}", instant=True)],
        unit="s", w=12,
        steps=thresholds((None, "green"), (1800, "orange"), (3600, "red")),
    ))

    p.append(L.row("In flight now"))
    p.append(unfinished_count("IN_PROGRESS", "Running", thresholds((None, "blue"))))
    p.append(unfinished_count("QUEUED", "Queued", thresholds((None, "green"), (10, "orange"))))
    p.append(unfinished_count("WAITING_FOR_USER", "Waiting for approval",
                              thresholds((None, "green"), (1, "orange"))))
    p.append(unfinished_count("ABORTING", "Aborting", thresholds((None, "green"), (1, "orange"))))
    age_steps = {
        "IN_PROGRESS": thresholds((None, "green"), (3600, "orange"), (7200, "red")),
        "QUEUED": thresholds((None, "green"), (900, "orange"), (1800, "red")),
        "WAITING_FOR_USER": thresholds((None, "green"), (3600, "orange"), (14400, "red")),
    }
    titles = {"IN_PROGRESS": "Oldest running", "QUEUED": "Oldest queued",
              "WAITING_FOR_USER": "Oldest waiting for approval"}
    age_alerts = {"IN_PROGRESS": "Env0DeploymentStuck", "QUEUED": "Env0DeploymentQueueBacklog",
                  "WAITING_FOR_USER": "Env0ApprovalWaitingTooLong"}
    for status, steps in age_steps.items():
        p.append(stat(
            f"{titles[status]} deployment age",
            f"How long the oldest {status} deployment has been in that status. Empty when there "
            "is none. Red at the alert threshold.",
            [target(f"time() - min(env0_deployment_oldest_unfinished_timestamp_seconds"
                    f'{{{EXP}, status="{status}"}})', status, instant=True)],
            unit="s", steps=steps, no_value="none", w=8, alert=age_alerts[status],
        ))
    p.append(timeseries(
        "Unfinished deployments by status",
        "Deployments queued, running, waiting for approval or aborting, over time.",
        [target(f'sum by (status) (env0_deployments{{{DEP_T}, '
                f'status=~"QUEUED|IN_PROGRESS|WAITING_FOR_USER|ABORTING"}})', "{{status}}")],
        stack=True, unit="short", w=24,
    ))

    p.append(L.row("Environments and drift"))
    p.append(bargauge(
        "Environments by status",
        "env0 environments by their env0 status (ACTIVE, FAILED, INACTIVE, ...).",
        [target(f"sum by (status) (env0_environments{{{EXP}}})", "{{status}}", instant=True)],
        unit="short", w=8, h=8,
    ))
    p.append(bargauge(
        "Environments by drift status",
        "env0 environments by drift status. DRIFTED ones differ from their code; "
        "Env0DriftDetected fires after 15 minutes.",
        [target(f"sum by (drift_status) (env0_environments{{{EXP}}})", "{{drift_status}}", instant=True)],
        unit="short", overrides=DRIFT_COLORS, w=8, h=8, alert="Env0DriftDetected",
    ))
    p.append(stat(
        "Time since the last successful drift detection",
        "Age of the newest driftDetection deployment that finished with SUCCESS. "
        "Env0DriftDetectionNotRunning fires past 25h.",
        [target("time() - max(env0_deployment_last_finished_timestamp_seconds"
                f'{{{EXP}, deployment_type="driftDetection", status="SUCCESS"}})',
                "drift detection", instant=True)],
        unit="s", steps=thresholds((None, "green"), (86400, "orange"), (90000, "red")),
        w=8, h=8, alert="Env0DriftDetectionNotRunning",
    ))
    p.append(panel(
        "table",
        "Last finished deployment by type and status",
        "When the newest deployment of each type finished with each status.",
        [target(f"max by (deployment_type, status) (env0_deployment_last_finished_timestamp_seconds"
                f'{{{EXP}, deployment_type=~"$deployment_type"}}) * 1000', instant=True)],
        unit="dateTimeAsIso", w=24, h=8,
        options={"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        overrides=[],
    ))
    p[-1]["transformations"] = [
        {"id": "labelsToFields", "options": {"mode": "columns"}},
        {"id": "organize", "options": {"excludeByName": {"Time": True},
                                       "renameByName": {"Value": "finished at"}}},
    ]

    p.extend(environment_panels())
    p.extend(signal_panels())

    p.append(L.row("Exporter health"))
    p.append(stat(
        "env0 API reachable (env0_up)",
        "1 when the exporter's last poll of the env0 API succeeded. On failure the exporter keeps "
        "serving the last good data.",
        [target(f"min(env0_up{{{EXP}}})", instant=True)],
        steps=thresholds((None, "red"), (1, "green")),
        mappings=[{"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "UP"}}}],
        w=6, alert="Env0ApiFailing",
    ))
    p.append(stat(
        "Exporter scraped (up)",
        "Prometheus' own up metric for the exporter's scrape target.",
        [target(f"min(up{{{EXP}}})", instant=True)],
        steps=thresholds((None, "red"), (1, "green")),
        mappings=[{"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "UP"}}}],
        w=6, alert="Env0ExporterDown",
    ))
    p.append(timeseries(
        "Age of the last successful poll",
        "Seconds since the exporter last polled env0 successfully, and the age at which "
        "Env0ExporterDataStale starts: 3 poll intervals, the interval being the mean time between "
        "successful polls over 6 hours (recording rule "
        "instance:env0_exporter_poll_interval_seconds:mean6h), at least 60s.",
        [target(f"time() - env0_exporter_last_successful_poll_timestamp_seconds{{{EXP}}}", "{{instance}}"),
         target(f"3 * clamp_min(instance:env0_exporter_poll_interval_seconds:mean6h{{{EXP}}}, 60)",
                "stale after {{instance}}")],
        unit="s", w=6, h=5, legend_bottom=True, alert="Env0ExporterDataStale",
    ))
    p.append(stat(
        "API budget remaining",
        "Requests the exporter may still send to env0 in the current minute "
        "(--max-requests-per-minute).",
        [target(f"min(env0_exporter_api_budget_remaining{{{EXP}}})", instant=True)],
        steps=thresholds((None, "red"), (10, "orange"), (50, "green")), w=6,
    ))
    p.append(timeseries(
        "API requests by endpoint and code",
        "Requests the exporter sent to the env0 API per second, by endpoint and HTTP status "
        "(or timeout/error).",
        [target(f"sum by (endpoint, code) (rate(env0_exporter_api_requests_total{{{EXP}}}[$__rate_interval]))",
                "{{endpoint}} {{code}}")],
        unit="reqps", w=12,
    ))
    p.append(timeseries(
        "API requests rate-limited (429)",
        "Requests env0 answered with HTTP 429, per second. Env0ApiRateLimited fires when this "
        "lasts 15 minutes.",
        [target(f'sum by (endpoint) (rate(env0_exporter_api_requests_total{{{EXP}, code="429"}}'
                "[$__rate_interval]))", "{{endpoint}}")],
        unit="reqps", steps=thresholds((None, "green"), (0.001, "red")), w=12,
        alert="Env0ApiRateLimited",
    ))
    p.append(timeseries(
        "Poll errors by reason",
        "Failed polls per second by reason (auth, forbidden, rate_limited, timeout, server_error, "
        "network, decode, bad_request).",
        [target(f"sum by (reason) (rate(env0_exporter_poll_errors_total{{{EXP}}}[$__rate_interval]))",
                "{{reason}}")],
        unit="short", w=12, alert="Env0ApiFailing",
    ))
    p.append(timeseries(
        "API request duration p90 by endpoint",
        "90th percentile of env0 API request durations, from env0_exporter_api_request_duration_seconds.",
        [target("histogram_quantile(0.9, sum by (endpoint, le) "
                f"(rate(env0_exporter_api_request_duration_seconds_bucket{{{EXP}}}[$__rate_interval])))",
                "{{endpoint}}")],
        unit="s", w=12,
    ))
    p.append(timeseries(
        "Poll duration",
        "How long the last poll of env0 took.",
        [target(f"env0_exporter_poll_duration_seconds{{{EXP}}}", "{{instance}}")],
        unit="s", w=8,
    ))
    p.append(timeseries(
        "Tracked deployments",
        "Deployment records the exporter holds in memory.",
        [target(f"env0_exporter_tracked_deployments{{{EXP}}}", "{{instance}}")],
        unit="short", w=8,
    ))
    p.append(stat(
        "Exporter version",
        "The version of env0-exporter that serves the data.",
        [target(f"count by (version) (env0_exporter_build_info{{{EXP}}})", "{{version}}", instant=True)],
        w=8, h=8,
    ))
    p[-1]["options"]["textMode"] = "name"
    p[-1]["options"]["colorMode"] = "none"
    p.append(timeseries(
        "Webhook deliveries by outcome",
        "env0 webhook deliveries received on POST /webhooks/env0 per second, by outcome: accepted, "
        "duplicate, ignored, bad_signature (401: wrong or missing signature), bad_request. Empty "
        "unless webhooks are on (--webhook-secret). Env0WebhookSignatureFailures fires on "
        "repeated bad_signature.",
        [target(f"sum by (outcome) (rate(env0_exporter_webhook_events_total{{{EXP}}}[$__rate_interval]))",
                "{{outcome}}")],
        unit="reqps", overrides=WEBHOOK_COLORS, w=12, alert="Env0WebhookSignatureFailures", pid=55,
    ))
    p.append(bargauge(
        "Series per family",
        "Label sets of each deployment family and of the environment view "
        "(env0_exporter_series). --max-series-per-metric (default 5000) bounds them: past it, the "
        "least busy projects fold into project=\"other\". Orange at 80% and red at 100% of the "
        "default budget.",
        [target(f"max by (metric) (env0_exporter_series{{{EXP}}})", "{{metric}}", instant=True)],
        unit="short", steps=thresholds((None, "green"), (4000, "orange"), (5000, "red")), w=12, pid=56,
    ))
    p.append(stat(
        "Shards reporting",
        "Distinct shards of the organization that report (env0_exporter_shard_info), and how many "
        "there are (env0_exporter_shards: M of --shard N/M, 1 unsharded). Across every instance of "
        "the job, whatever the Instance filter: with fewer reporting than there are, some "
        "environments are watched by no exporter, and Env0ExporterShardMissing fires.",
        [target('count(count by (shard) (env0_exporter_shard_info{job=~"$job"}))', "reporting", instant=True),
         target('max(env0_exporter_shards{job=~"$job"})', "shards", ref="B", instant=True)],
        w=12, alert="Env0ExporterShardMissing", pid=57,
    ))
    p[-1]["options"]["colorMode"] = "none"
    p.append(bargauge(
        "Webhook coverage by deployment type",
        "With webhooks on: 1 for the deployment types whose ends env0's deliveries were seen to "
        "bring within the last 24 hours (a success and another end), 0 for those whose runs keep "
        "the polling freshness while webhooks are live (re-read every poll while young), e.g. PR "
        "plans when env0 sends no event for a plan's success "
        "(env0_exporter_webhook_ends_delivered). Runs of projects no delivery came from keep it "
        "too (env0_exporter_webhook_projects_delivering). Empty unless webhooks are on "
        "(--webhook-secret).",
        [target(f"min by (deployment_type) (env0_exporter_webhook_ends_delivered{{{EXP}}})",
                "{{deployment_type}}", instant=True)],
        unit="short", steps=thresholds((None, "orange"), (1, "green")), w=12, pid=58,
    ))
    return p


def environment_panels() -> list[dict]:
    """The per-environment view (--environment-metrics): which environments' latest run failed."""
    env_f = f'{EXP}, deployment_type=~"$deployment_type", {PROJ}, {FAILED}'
    p = [L.row("Environments", pid=41)]
    p.append(stat(
        "Environments failing now",
        "Environments whose latest run (env0's latestDeploymentLog) ended in FAILURE, TIMEOUT or "
        "INTERNAL_FAILURE. Needs the exporter's --environment-metrics (chart: "
        "views.environmentMetrics); \"none\" without it. Env0EnvironmentLatestDeploymentFailed "
        "fires for each after 15 minutes.",
        [target(f"count(env0_environment_latest_deployment{{{env_f}}})", "failed", instant=True)],
        steps=thresholds((None, "green"), (1, "red")), no_value="none", w=6, h=8,
        alert="Env0EnvironmentLatestDeploymentFailed", pid=42,
    ))
    p.append(panel(
        "table",
        "Environments whose latest run failed",
        "One row per environment whose latest run failed, with its project, the run's type and "
        "status, and when it finished. The environment name links to the environment in env0. "
        "Needs --environment-metrics.",
        [target(f"max by (environment, project, deployment_type, status, environment_id, project_id) ("
                f"env0_environment_latest_deployment{{{env_f}}} "
                "* on (job, instance, environment_id) group_left () "
                f"env0_environment_latest_deployment_finished_timestamp_seconds{{{EXP}, {PROJ}}}) * 1000",
                instant=True, table=True)],
        unit="short", w=18, h=8, pid=43,
        options={"showHeader": True, "sortBy": [{"displayName": "finished at", "desc": True}]},
        overrides=[
            {"matcher": {"id": "byName", "options": "environment"},
             "properties": [{"id": "links", "value": [{
                 "title": "Open ${__data.fields.environment} in env0",
                 "url": ENV0_ENVIRONMENT_URL,
                 "targetBlank": True,
             }]}]},
            {"matcher": {"id": "byName", "options": "finished at"},
             "properties": [{"id": "unit", "value": "dateTimeAsIso"}]},
        ],
    ))
    p[-1]["transformations"] = [
        {"id": "organize", "options": {
            "excludeByName": {"Time": True},
            "indexByName": {"environment": 0, "project": 1, "deployment_type": 2, "status": 3,
                            "Value": 4, "environment_id": 5, "project_id": 6},
            "renameByName": {"Value": "finished at"},
        }},
    ]
    return p


def signal_panels() -> list[dict]:
    """IaC signals: resource changes, approval waits, time to restore, drift detection results."""
    deploys = f'{TOOL}, deployment_type="deploy"'
    p = [L.row("IaC signals", pid=44)]
    p.append(timeseries(
        "Resources changed by deploys per hour, by action",
        "Resources in the plan summaries of finished deploy runs (env0_deployment_resource_changes_total), "
        "per hour, by action (added, changed, destroyed, imported). A replacement counts as "
        "destroyed and added. Env0MassDestroy fires above 20 destroyed in 15 minutes.",
        [target(f"sum by (action) (rate(env0_deployment_resource_changes_total{{{deploys}}}[$__rate_interval])) * 3600",
                "{{action}}")],
        stack=True, bars=True, overrides=ACTION_COLORS, w=12, alert="Env0MassDestroy", pid=45,
    ))
    p.append(timeseries(
        "Planned resource changes per hour by deployment type",
        "What the plan-only runs (PR plans, drift detections, remote plans, ...) would change, per "
        "hour, by deployment type and action: the plans' numbers, not changes made.",
        [target(f'sum by (deployment_type, action) (rate(env0_deployment_resource_changes_total{{{DEP}, '
                'deployment_type!="deploy"}[$__rate_interval])) * 3600', "{{deployment_type}} {{action}}")],
        stack=True, w=12, pid=46,
    ))
    p.append(stat(
        "Resources destroyed by deploys (15m)",
        "Resources destroyed by finished deploy runs in the last 15 minutes, all projects together. "
        "Env0MassDestroy fires above 20 (per project with --project-label).",
        [target(f'sum(increase(env0_deployment_resource_changes_total{{{deploys}, action="destroyed"}}[15m]))',
                "destroyed", instant=True)],
        steps=thresholds((None, "green"), (10, "orange"), (20, "red")), w=6, h=8,
        alert="Env0MassDestroy", pid=47,
    ))
    p.append(timeseries(
        "Approval wait p50/p90 (1h window)",
        "How long runs waited WAITING_FOR_USER before someone approved, cancelled or aborted them "
        "(env0_deployment_approval_wait_seconds), over a sliding hour. Measured by the exporter's "
        "sightings, so precise to one poll interval (or to a webhook delivery).",
        quantiles("env0_deployment_approval_wait_seconds", "", DEP, qs=(0.5, 0.9), window="1h"),
        unit="s", w=12, pid=48,
    ))
    p.append(stat(
        "Approval wait p90 (1 day)",
        "90th percentile of the approval waits of the last day, from the recording rule "
        "job:env0_deployment_approval_wait_seconds:p90_1d (all types and tools).",
        [target('job:env0_deployment_approval_wait_seconds:p90_1d{job=~"$job"}', "{{job}}", instant=True)],
        unit="s", steps=thresholds((None, "green"), (3600, "orange"), (14400, "red")), w=6, h=8, pid=49,
    ))
    recovery = "env0_environment_recovery_duration_seconds"
    p.append(stat(
        "Time to restore, mean (7d)",
        "DORA time to restore: from an environment's first failed deploy to its next successful "
        "one, mean over the last 7 days (env0_environment_recovery_duration_seconds).",
        [target(f"sum(increase({recovery}_sum{{{TOOL}}}[7d])) / sum(increase({recovery}_count{{{TOOL}}}[7d]))",
                "mean", instant=True)],
        unit="s", steps=thresholds((None, "green"), (86400, "orange"), (604800, "red")), w=6, h=8, pid=50,
    ))
    p.append(stat(
        "Time to restore, p90 (7d)",
        "90th percentile of the times to restore of the last 7 days.",
        [target(f"histogram_quantile(0.9, sum by (le) (increase({recovery}_bucket{{{TOOL}}}[7d])))",
                "p90", instant=True)],
        unit="s", steps=thresholds((None, "green"), (86400, "orange"), (604800, "red")), w=6, h=8, pid=51,
    ))
    p.append(timeseries(
        "Time to restore over time (7d mean and p90)",
        "The DORA time to restore as it evolves, from the recording rules "
        "job:env0_environment_recovery_duration_seconds:mean7d and :p90_7d (all tools and projects).",
        [target('job:env0_environment_recovery_duration_seconds:mean7d{job=~"$job"}', "mean {{job}}"),
         target('job:env0_environment_recovery_duration_seconds:p90_7d{job=~"$job"}', "p90 {{job}}")],
        unit="s", w=12, pid=52,
    ))
    p.append(timeseries(
        "Drift detections per hour by result",
        "Finished driftDetection runs per hour (env0_drift_detections_total): drifted, clean, or "
        "failed (the run itself did not succeed).",
        [target(f"sum by (result) (rate(env0_drift_detections_total{{{TOOL}}}[$__rate_interval])) * 3600",
                "{{result}}")],
        stack=True, bars=True, overrides=DRIFT_RESULT_COLORS, w=12, pid=53,
    ))
    p.append(timeseries(
        "Failed drift detections (6h share)",
        "Share of the drift detections of the last 6 hours whose run failed, from the recording rule "
        "job:env0_drift_detections_failed:ratio_increase6h. Env0DriftDetectionsFailing fires above "
        "50% with at least 5 drift detections in the 6 hours.",
        [target('job:env0_drift_detections_failed:ratio_increase6h{job=~"$job"}', "{{job}}")],
        unit="percentunit", min_=0, max_=1, steps=thresholds((None, "green"), (0.25, "orange"), (0.5, "red")),
        w=12, alert="Env0DriftDetectionsFailing", pid=54,
    ))
    return p


def variable(name: str, label: str, query: str, *, multi: bool = True) -> dict:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-query"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "hide": 0,
    }


def dashboard() -> dict:
    templating = [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "options": [],
            "refresh": 1,
            "regex": "",
        },
        variable("job", "Job", "label_values(env0_up, job)"),
        variable("instance", "Instance", 'label_values(env0_up{job=~"$job"}, instance)'),
        variable("deployment_type", "Deployment type",
                 'label_values(env0_deployments{job=~"$job"}, deployment_type)'),
        variable("iac_tool", "IaC tool", 'label_values(env0_deployments{job=~"$job"}, iac_tool)'),
        variable("trigger", "Trigger", 'label_values(env0_deployments{job=~"$job"}, trigger)'),
        # Values only with --project-label; "All" (.*) matches series without the label too.
        variable("project", "Project", 'label_values(env0_deployments{job=~"$job"}, project)'),
    ]
    return {
        "uid": "env0-exporter",
        "title": "env0 deployments",
        "description": "env0 deployments, environments, drift and the health of env0-exporter.",
        "tags": ["env0", "env0-exporter", "iac"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [{
            "title": "Alert runbook",
            "type": "link",
            "url": RUNBOOK,
            "icon": "doc",
            "tooltip": "What each env0 alert means, how to confirm it and what to do",
            "targetBlank": True,
            "asDropdown": False,
            "includeVars": False,
            "keepTime": False,
            "tags": [],
        }],
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "templating": {"list": templating},
        "panels": build_panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if the committed JSON differs from the generated one")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is not what dashboards/generate.py makes: run python3 dashboards/generate.py",
                  file=sys.stderr)
            return 1
        print(f"{OUT.name}: matches dashboards/generate.py")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
