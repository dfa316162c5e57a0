#!/usr/bin/env bash
# A three-node RabbitMQ cluster on one machine, behind HAProxy in TCP mode
# (as a Kubernetes Service would be), for the chaos run's cluster mode and
# for trying a worker against a cluster by hand. Debian's rabbitmq-server
# packages: the nodes run as the `rabbitmq` user and share its Erlang cookie
# and the one epmd with the machine's own broker, which is left alone.
#
#   cluster.sh start              three nodes c1..c3@localhost (AMQP 5681-5683), joined; HAProxy on 5680
#   cluster.sh stop               stop HAProxy and the nodes, remove their data
#   cluster.sh kill N             SIGKILL node cN (no clean shutdown)
#   cluster.sh restart N          start node cN again (after kill), wait until it runs
#   cluster.sh leader QUEUE       the node hosting QUEUE's leader (c1..c3)
#   cluster.sh status             cluster_status as JSON
#
# Every wait is bounded; a failure exits non-zero with one line saying why.
set -euo pipefail

BASE="${REHOST_CLUSTER_DIR:-/tmp/rehost-cluster}"
AMQP_BASE="${REHOST_CLUSTER_PORT:-5680}"   # HAProxy; nodes on +1..+3
DIST_BASE=$((AMQP_BASE + 20000))           # Erlang distribution ports
NODES=(1 2 3)

die() { echo "cluster.sh: $*" >&2; exit 1; }
node() { echo "c$1@localhost"; }
as_rabbitmq() { su rabbitmq -s /bin/sh -c "$1"; }
ctl() { rabbitmqctl -q -n "$(node "$1")" "${@:2}"; }

node_env() {
  local n=$1 dir="$BASE/c$1"
  echo "RABBITMQ_NODENAME=$(node "$n") RABBITMQ_NODE_PORT=$((AMQP_BASE + n))" \
       "RABBITMQ_DIST_PORT=$((DIST_BASE + n)) RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
       "RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_MNESIA_DIR=$dir/mnesia/$(node "$n")" \
       "RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/pid" \
       "RABBITMQ_FEATURE_FLAGS_FILE=$dir/feature_flags" \
       "RABBITMQ_PLUGINS_EXPAND_DIR=$dir/plugins-expand" \
       "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
       "RABBITMQ_SERVER_START_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'"
}

wait_running() { # node, seconds
  for _ in $(seq 1 "$2"); do
    ctl "$1" await_startup --timeout 1 >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "node $(node "$1") did not start within $2 s (log: $BASE/c$1/log)"
}

start_node() {
  local n=$1 dir="$BASE/c$1"
  mkdir -p "$dir/log" "$dir/mnesia"
  printf 'listeners.tcp.local = 127.0.0.1:%s\n' $((AMQP_BASE + n)) > "$dir/rabbitmq.conf"
  [ -f "$dir/enabled_plugins" ] || echo '[].' > "$dir/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$dir"
  as_rabbitmq "cd /var/lib/rabbitmq && env HOME=/var/lib/rabbitmq $(node_env "$n") /usr/lib/rabbitmq/bin/rabbitmq-server -detached" \
    >"$dir/log/start.out" 2>&1 || die "node $(node "$n") would not start"
  wait_running "$n" 90
}

haproxy_start() {
  cat > "$BASE/haproxy.cfg" <<CFG
global
  maxconn 2000
defaults
  mode tcp
  timeout connect 5s
  timeout client 3h
  timeout server 3h
  timeout check 2s
listen amqp
  bind 127.0.0.1:${AMQP_BASE}
  balance roundrobin
  option tcp-check
  default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
  server c1 127.0.0.1:$((AMQP_BASE + 1)) check
  server c2 127.0.0.1:$((AMQP_BASE + 2)) check
  server c3 127.0.0.1:$((AMQP_BASE + 3)) check
CFG
  haproxy -D -f "$BASE/haproxy.cfg" -p "$BASE/haproxy.pid" || die "HAProxy would not start"
}

cmd_start() {
  command -v haproxy >/dev/null || die "HAProxy is not installed (apt-get install haproxy)"
  cmd_stop >/dev/null 2>&1 || true
  mkdir -p "$BASE"
  for n in "${NODES[@]}"; do start_node "$n"; done
  for n in 2 3; do
    ctl "$n" stop_app >/dev/null
    ctl "$n" join_cluster "$(node 1)" >/dev/null || die "$(node "$n") could not join $(node 1)"
    ctl "$n" start_app >/dev/null
  done
  local running
  running=$(ctl 1 cluster_status --formatter json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))')
  [ "$running" = 3 ] || die "the cluster runs $running nodes, not 3"
  haproxy_start
  echo "cluster.sh: 3 nodes running, AMQP through HAProxy at 127.0.0.1:${AMQP_BASE}"
}

node_pid() { ctl "$1" eval 'list_to_integer(os:getpid()).' 2>/dev/null | tr -d '"'; }

cmd_kill() {
  local pid
  pid=$(node_pid "$1") || die "node $(node "$1") does not answer"
  [ -n "$pid" ] || die "no pid for $(node "$1")"
  kill -9 "$pid"
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  die "node $(node "$1") (pid $pid) survived SIGKILL"
}

cmd_restart() { start_node "$1"; }

cmd_leader() {
  ctl 1 list_queues name leader --formatter json 2>/dev/null \
    || ctl 2 list_queues name leader --formatter json 2>/dev/null \
    || ctl 3 list_queues name leader --formatter json
} 

cmd_stop() {
  if [ -f "$BASE/haproxy.pid" ]; then kill "$(cat "$BASE/haproxy.pid")" 2>/dev/null || true; fi
  for n in "${NODES[@]}"; do
    local pid
    pid=$(node_pid "$n" || true)
    if [ -n "$pid" ]; then
      timeout 30 rabbitmqctl -q -n "$(node "$n")" stop >/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$BASE"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill "${2:?node number}" ;;
  restart) cmd_restart "${2:?node number}" ;;
  leader) cmd_leader | python3 -c 'import json,sys
q=sys.argv[1]
for e in json.load(sys.stdin):
    if e["name"]==q: print(e["leader"].split("@")[0]); break
else: sys.exit("no such queue")' "${2:?queue}" ;;
  status) ctl 1 cluster_status --formatter json ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
