#!/usr/bin/env python3
"""Checks the PromQL of the Grafana dashboard and the alert rules.

- Every metric name used in deploy/grafana/rehost.json (panel queries and
  variable queries) and deploy/prometheus/alerts.yml is one the worker exports
  (the list below, the table in docs/operations.md) or `up`.
- Every dashboard query parses: Grafana's variables are replaced by
  plausible values and the queries are handed to `promtool check rules` as
  recording rules.

Run from the repository root (deploy/check.sh does). Needs python3 and
promtool; PyYAML is used when present (docker-compose depends on it).
Exits non-zero on any finding.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

DASHBOARD = "deploy/grafana/rehost.json"
ALERTS = "deploy/prometheus/alerts.yml"

COUNTERS = [
    "rehost_jobs_total", "rehost_retries_total", "rehost_parked_total",
    "rehost_deliveries_total", "rehost_assets_total", "rehost_fetched_bytes_total",
    "rehost_stored_bytes_total", "rehost_broker_reconnects_total",
    "rehost_store_errors_total", "rehost_verdicts_total", "rehost_normalized_total",
]
GAUGES = [
    "rehost_jobs_in_flight", "rehost_jobs_held", "rehost_concurrency",
    "rehost_dead_letter_depth", "rehost_queue_messages_ready", "rehost_ready",
    "rehost_consuming",
]
HISTOGRAMS = ["rehost_fetch_seconds", "rehost_store_seconds", "rehost_job_age_seconds"]
ALLOWED = set(COUNTERS) | set(GAUGES) | {"up"} | {
    h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")
}

KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
}

STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGES = re.compile(r"\[[^\[\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr):
    """The metric names an expression selects (best effort, no full parser)."""
    e = STRING.sub('""', expr)
    e = MATCHERS.sub(" ", e)
    e = RANGES.sub(" ", e)
    e = GROUPING.sub(" ", e)
    names = set()
    for m in IDENT.finditer(e):
        word, call = m.group(1), m.group(2)
        if call or word in KEYWORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs(dash):
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    return exprs


def variable_exprs(dash):
    """Series selectors inside label_values(...) of query variables."""
    out = []
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.match(r"\s*label_values\((.*),\s*\w+\s*\)\s*$", q)
        if m:
            out.append(("variable " + v["name"], m.group(1)))
        elif q.strip():
            out.append(("variable " + v["name"], q))
    return out


def alert_exprs():
    text = open(ALERTS, encoding="utf-8").read()
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        # Without PyYAML: every rehost_* word in the file is checked.
        return [("alerts.yml", " ".join(re.findall(r"\brehost_\w+", text)))]
    out = []
    for g in yaml.safe_load(text)["groups"]:
        for r in g["rules"]:
            out.append((r.get("alert") or r.get("record"), str(r["expr"])))
    return out


def grafana_to_promql(expr):
    """Replaces Grafana's variables by values promtool accepts."""
    e = expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
    e = e.replace("$__interval", "1m")
    e = re.sub(r"\$\{?\w+\}?", ".*", e)
    return e


def main():
    problems = []
    with open(DASHBOARD, encoding="utf-8") as f:
        dash = json.load(f)

    panel_exprs = dashboard_exprs(dash)
    if not panel_exprs:
        problems.append(f"{DASHBOARD}: no queries found")
    checked = 0
    for where, expr in panel_exprs + variable_exprs(dash) + alert_exprs():
        for name in sorted(metric_names(expr) - ALLOWED):
            problems.append(f"{where}: unknown metric {name!r} in: {expr}")
        checked += 1

    # Syntax of the dashboard's queries, through promtool.
    rules = {"groups": [{"name": "dashboard-syntax", "rules": [
        {"record": f"dashboard:query:{i}", "expr": grafana_to_promql(e)}
        for i, (_, e) in enumerate(panel_exprs)
    ]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as tmp:
        json.dump(rules, tmp)  # JSON is YAML
        path = tmp.name
    try:
        res = subprocess.run(["promtool", "check", "rules", path],
                             capture_output=True, text=True, check=False)
    finally:
        os.unlink(path)
    if res.returncode != 0:
        problems.append("dashboard queries do not parse:\n" + res.stdout + res.stderr)

    for p in problems:
        print("lint_promql: " + p, file=sys.stderr)
    if problems:
        return 1
    print(f"lint_promql: {checked} expressions use only exported metrics; "
          f"{len(panel_exprs)} dashboard queries parse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
