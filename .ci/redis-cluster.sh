#!/usr/bin/env bash
# A local Redis Cluster for the Redis backend's tests: three primaries with one
# replica each, on loopback ports BASE..BASE+5.
#
#   .ci/redis-cluster.sh start   # prints the store address (redis://...)
#   .ci/redis-cluster.sh stop
#   .ci/redis-cluster.sh address
#   .ci/redis-cluster.sh restart PORT   # one node again, on its own files
#
# Environment: REDIS_CLUSTER_PORT (first port, default 7000), REDIS_CLUSTER_DIR
# (node directories, default /tmp/rapport-redis-<port>), REDIS_SERVER and
# REDIS_CLI (the binaries, default from PATH). Each node keeps an append-only
# file synced every second, as docs/scale-out.md describes.
set -euo pipefail

BASE=${REDIS_CLUSTER_PORT:-7000}
DIR=${REDIS_CLUSTER_DIR:-/tmp/rapport-redis-$BASE}
SERVER=${REDIS_SERVER:-redis-server}
CLI=${REDIS_CLI:-redis-cli}
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=($((BASE + i))); done

address() {
    local nodes=()
    for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    local IFS=,
    echo "redis://${nodes[*]}"
}

start_node() {
    local port=$1
    mkdir -p "$DIR/$port"
    "$SERVER" --port "$port" --bind 127.0.0.1 --daemonize yes \
        --dir "$DIR/$port" --pidfile "$DIR/$port/redis.pid" --logfile "$DIR/$port/redis.log" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000 \
        --appendonly yes --appendfsync everysec --save '' \
        --protected-mode no
}

# Until every node sees every slot served and every replica has synced with
# its primary: before that, a write's WAIT would find no replica.
wait_ok() {
    for _ in $(seq 1 300); do
        local ok=0 synced=0
        for port in "${PORTS[@]}"; do
            if "$CLI" -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
                ok=$((ok + 1))
            fi
            if "$CLI" -p "$port" info replication 2>/dev/null | grep -q '^master_link_status:up'; then
                synced=$((synced + 1))
            fi
        done
        [ "$ok" -eq "${#PORTS[@]}" ] && [ "$synced" -eq $(( ${#PORTS[@]} / 2 )) ] && return 0
        sleep 0.1
    done
    echo "redis cluster on $BASE did not become ok" >&2
    return 1
}

start() {
    if "$CLI" -p "$BASE" ping >/dev/null 2>&1; then
        echo "a redis server already listens on $BASE" >&2
        exit 1
    fi
    rm -rf "$DIR"
    for port in "${PORTS[@]}"; do start_node "$port"; done
    for port in "${PORTS[@]}"; do
        for _ in $(seq 1 100); do
            "$CLI" -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
    done
    local nodes=()
    for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    "$CLI" --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log"
    wait_ok
    address
}

stop() {
    for port in "${PORTS[@]}"; do
        local pidfile="$DIR/$port/redis.pid"
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    for port in "${PORTS[@]}"; do
        local pidfile="$DIR/$port/redis.pid"
        for _ in $(seq 1 100); do
            [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || break
            sleep 0.05
        done
    done
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    address) address ;;
    restart) start_node "${2:?restart needs a port}" ;;
    *) echo "usage: $0 start|stop|address|restart PORT" >&2; exit 2 ;;
esac
