#!/usr/bin/env python3
"""Checks that every query of the Grafana dashboard parses: Grafana's
variables are replaced by plausible values and the queries are handed to
`promtool check rules` as recording rules. (That every metric name in the
dashboard and the alert rules is one the worker exports is checked against
the worker's own registry by `cargo test --test deploy`.)

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
    print(f"lint_promql: {len(panel_exprs)} dashboard queries parse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
