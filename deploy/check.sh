#!/usr/bin/env bash
# Checks the deployment files that can be checked without a Docker engine or
# a cluster (docs/operations.md, "What is checked here"):
#   - compose.yaml against docker-compose's schema, with and without an .env
#     (a fresh clone has only .env.example), and every port on 127.0.0.1;
#   - the alert rules (promtool check rules) and their unit tests
#     (promtool test rules);
#   - the Grafana dashboard's JSON syntax, and that its queries parse (that
#     they and the alerts use only metrics the worker exports is checked
#     against the worker's registry by `cargo test --test deploy`);
#   - the shell syntax of deploy/*.sh and the YAML syntax of deploy/k8s.
# Run from anywhere; exits non-zero on the first failure. Installs nothing:
# needs docker-compose (Debian's 1.29 or later), promtool (Debian package
# `prometheus`) and python3 (with PyYAML, a dependency of docker-compose).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'check: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in docker-compose promtool python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# Variables from the caller's shell would change what compose sees.
unset COMPOSE_FILE COMPOSE_PROJECT_NAME COMPOSE_PATH_SEPARATOR \
  REHOST_AMQP_PORT REHOST_RABBITMQ_UI_PORT REHOST_S3_PORT \
  REHOST_MINIO_CONSOLE_PORT REHOST_ORIGIN_PORT REHOST_HTTP_PORT RUST_LOG

# --env-file points away from any .env of the caller, which stays untouched;
# an empty file is the same as no .env at all.
no_env=$(mktemp)
trap 'rm -f "$no_env"' EXIT

step "docker-compose $(docker-compose version --short 2>/dev/null || echo '?'): compose.yaml without .env"
docker-compose -f compose.yaml --env-file "$no_env" config -q \
  || fail "compose.yaml does not pass 'config -q' without an .env"
echo ok

step "compose.yaml with .env.example as .env"
docker-compose -f compose.yaml --env-file .env.example config -q \
  || fail "compose.yaml does not pass 'config -q' with .env.example"
echo ok

step "compose.yaml publishes ports on 127.0.0.1 only"
docker-compose -f compose.yaml --env-file .env.example config | python3 -c '
import sys, yaml
cfg = yaml.safe_load(sys.stdin)
bad = []
for name, svc in cfg["services"].items():
    for p in svc.get("ports", []):
        ip = p.get("host_ip") if isinstance(p, dict) else (str(p).split(":")[0] if str(p).count(":") == 2 else "")
        if ip != "127.0.0.1":
            bad.append(f"{name}: {p}")
        else:
            print(f"{name}: {p}")
if bad:
    sys.exit("published beyond 127.0.0.1: " + ", ".join(bad))
' || fail "a port is published beyond 127.0.0.1"

step "promtool check rules deploy/prometheus/alerts.yml"
promtool check rules deploy/prometheus/alerts.yml || fail "alert rules"

step "promtool test rules deploy/prometheus/alerts_test.yml"
promtool test rules deploy/prometheus/alerts_test.yml || fail "alert rule unit tests"

step "dashboard JSON syntax (python3 -m json.tool)"
python3 -m json.tool deploy/grafana/rehost.json >/dev/null || fail "deploy/grafana/rehost.json is not valid JSON"
echo ok

step "dashboard query syntax (deploy/lint_promql.py)"
python3 deploy/lint_promql.py || fail "PromQL lint"

step "runbook links of the alerts and links inside docs/operations.md"
python3 - <<'PY' || fail "runbook anchors"
import re, sys
doc = open("docs/operations.md", encoding="utf-8").read()
def anchor(heading):  # GitHub's rule: lower case, drop punctuation, spaces to '-'
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading.strip().lower()))
anchors = {anchor(h) for h in re.findall(r"^#+ (.*)$", doc, re.M)}
rules = open("deploy/prometheus/alerts.yml", encoding="utf-8").read()
alerts = re.findall(r"^\s*- alert: (\w+)", rules, re.M)
links = re.findall(r"runbook: docs/operations\.md#(\S+)", rules)
bad = [a for a in links if a not in anchors]
if len(links) != len(alerts):
    bad.append(f"{len(alerts)} alerts but {len(links)} runbook annotations")
bad += [f"internal link #{a}" for a in re.findall(r"\]\(#([^)]+)\)", doc) if a not in anchors]
if bad:
    sys.exit("missing in docs/operations.md: " + ", ".join(bad))
print(f"{len(links)} runbook anchors and the page's internal links resolve")
PY

step "shell syntax of deploy/*.sh"
for f in deploy/*.sh; do
  bash -n "$f" || fail "$f"
  echo "$f ok"
done

step "YAML syntax of deploy/k8s/*.yaml (not validated against a cluster)"
python3 -c '
import sys, yaml
for path in sys.argv[1:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if not {"apiVersion", "kind", "metadata"} <= set(d):
            sys.exit(f"{path}: a document without apiVersion, kind or metadata")
    print(f"{path}: {len(docs)} document(s)")
' deploy/k8s/*.yaml || fail "deploy/k8s YAML"

printf '\ncheck: all passed\n'
