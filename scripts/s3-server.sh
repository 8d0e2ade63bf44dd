#!/usr/bin/env bash
# Local S3 API server (moto) for tweetflow's object-storage demo.
#
#   scripts/s3-server.sh start   start (or reuse) the server, create the `tweetflow` bucket,
#                                print its endpoint URL
#   scripts/s3-server.sh stop    stop the server started here (no-op if none)
#   scripts/s3-server.sh url     print the endpoint of the running server (exit 1 if none)
#
# Its state lives in memory (a restart empties it); pid, port and log files are under
# data/s3/. It listens on 127.0.0.1, port 9000 or S3_PORT. The URL goes to stdout and
# everything else to stderr. moto comes from requirements-s3.txt (`scripts/setup-venv.sh s3`).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/data/s3"
venv=${TWEETFLOW_VENV:-$root/.venv}
pid_file="$dir/server.pid"
port=${S3_PORT:-9000}
bucket=${S3_BUCKET:-tweetflow}
host=127.0.0.1

say() { echo "s3-server: $*" >&2; }

answers() { # port
    "$venv/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2).read()
PY
}

running() {
    [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null && answers "$port"
}

create_bucket() {
    "$venv/bin/python" - "$port" "$bucket" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}", method="PUT")
urllib.request.urlopen(req, timeout=5).read()
PY
}

case "${1:-}" in
start)
    mkdir -p "$dir"
    if ! running; then
        say "starting moto on $host:$port"
        nohup "$venv/bin/moto_server" -H "$host" -p "$port" >"$dir/server.log" 2>&1 &
        echo $! >"$pid_file"
        for _ in $(seq 1 100); do
            answers "$port" && break
            sleep 0.2
        done
        answers "$port" || { say "did not start; see $dir/server.log"; exit 1; }
    fi
    create_bucket
    echo "http://$host:$port"
    ;;
stop)
    if [ -f "$pid_file" ]; then
        kill "$(cat "$pid_file")" 2>/dev/null || true
        rm -f "$pid_file"
        say "stopped"
    fi
    ;;
url)
    running && echo "http://$host:$port"
    ;;
*)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
