#!/usr/bin/env bash
# Local MLflow tracking server for tweetflow.
#
#   scripts/mlflow-server.sh start   start (or reuse) the server, wait for /health, print its URL
#   scripts/mlflow-server.sh stop    stop the server started here (no-op if none)
#   scripts/mlflow-server.sh url     print the URL of the running server (exit 1 if none)
#   scripts/mlflow-server.sh status  say whether it runs
#
# The server keeps its state under data/mlflow/: sqlite database (mlflow.db), artifacts
# (artifacts/), log (server.log), pid and port files. It listens on 127.0.0.1, port 5000, or
# a free port when 5000 is taken (MLFLOW_PORT overrides). The URL goes to stdout and
# everything else to stderr, so `export MLFLOW_TRACKING_URI=$(scripts/mlflow-server.sh start)`
# works. When MLFLOW_TRACKING_URI is already set, `start` and `url` only print it.
# The Python environment comes from scripts/setup-venv.sh (.venv, or TWEETFLOW_VENV).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/data/mlflow"
venv=${TWEETFLOW_VENV:-$root/.venv}
pid_file="$dir/server.pid"
port_file="$dir/server.port"
log_file="$dir/server.log"
host=127.0.0.1

say() { echo "mlflow-server: $*" >&2; }

healthy() { # port
    local url="http://$host:$1/health"
    if command -v curl >/dev/null 2>&1; then
        [ "$(curl -fsS --max-time 2 "$url" 2>/dev/null)" = "OK" ]
    else
        "$venv/bin/python" - "$url" <<'PY' 2>/dev/null
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).read().strip() == b"OK" else 1)
PY
    fi
}

alive() { # pid
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

# Prints the port of our running, healthy server, or fails.
running_port() {
    [ -f "$pid_file" ] && [ -f "$port_file" ] || return 1
    local pid port
    pid=$(cat "$pid_file")
    port=$(cat "$port_file")
    alive "$pid" && healthy "$port" && echo "$port"
}

port_free() { # port
    "$venv/bin/python" - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

free_port() {
    "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_server() {
    local pid
    pid=$(cat "$pid_file" 2>/dev/null || true)
    if alive "$pid"; then
        say "stopping the server (pid $pid)"
        # The server runs in its own process group (setsid): stop the workers too.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file" "$port_file"
}

start_server() {
    if [ -n "${MLFLOW_TRACKING_URI:-}" ]; then
        say "MLFLOW_TRACKING_URI is set; not starting a local server"
        echo "$MLFLOW_TRACKING_URI"
        return 0
    fi
    if [ ! -x "$venv/bin/mlflow" ]; then
        say "$venv/bin/mlflow not found; create the Python environment first: scripts/setup-venv.sh"
        return 1
    fi
    mkdir -p "$dir/artifacts"
    local port
    if port=$(running_port); then
        say "reusing the server already running on port $port"
        echo "http://$host:$port"
        return 0
    fi
    # A stale pid file (crashed or unhealthy server): clean up before starting anew.
    stop_server
    port=${MLFLOW_PORT:-5000}
    if ! port_free "$port"; then
        local taken=$port
        port=$(free_port)
        say "port $taken is taken; using $port"
    fi
    say "starting the server on $host:$port (state in ${dir#"$root"/})"
    (
        # Its own directory (an ./mlruns folder in the working directory breaks the start) and
        # its own process group, so that stop reaches every worker.
        cd "$dir"
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
            exec setsid "$venv/bin/mlflow" server --host "$host" --port "$port" \
            --backend-store-uri "sqlite:///$dir/mlflow.db" \
            --artifacts-destination "$dir/artifacts" --workers 1 \
            </dev/null >>"$log_file" 2>&1 9>&-
    ) &
    local pid=$!
    echo "$pid" >"$pid_file"
    echo "$port" >"$port_file"
    local waited=0
    until healthy "$port"; do
        if ! alive "$pid"; then
            say "the server exited during startup; last lines of ${log_file#"$root"/}:"
            tail -n 20 "$log_file" >&2 || true
            rm -f "$pid_file" "$port_file"
            return 1
        fi
        if [ "$waited" -ge 600 ]; then
            say "no answer from /health after 120 s; see ${log_file#"$root"/}"
            stop_server
            return 1
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    say "ready after $((waited / 5)) s"
    echo "http://$host:$port"
}

with_lock() {
    mkdir -p "$dir"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$dir/.lock"
        flock 9
    fi
    "$@"
}

case "${1:-}" in
    start) with_lock start_server ;;
    stop) with_lock stop_server ;;
    url)
        if [ -n "${MLFLOW_TRACKING_URI:-}" ]; then
            echo "$MLFLOW_TRACKING_URI"
        elif port=$(running_port); then
            echo "http://$host:$port"
        else
            say "no local server running (scripts/mlflow-server.sh start)"
            exit 1
        fi
        ;;
    status)
        if port=$(running_port); then
            say "running on http://$host:$port (pid $(cat "$pid_file"))"
        else
            say "not running"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 start|stop|url|status" >&2
        exit 2
        ;;
esac
