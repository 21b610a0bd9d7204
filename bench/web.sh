#!/usr/bin/env bash
# Browser access edge benchmark on loopback (127.0.0.1 only): nginx serving files straight
# (direct) against the same nginx published for browsers through the relay's edge (HTTPS to the
# relay, per-request policy and audit, a tunnel stream to the back agent). Bulk: curl downloads of
# one large file (HTTP/1.1 and HTTP/2 to the edge), MB/s. Rate: wrk requests/s for a 1 KiB file
# over 50 keep-alive connections. The session comes from a real sign-in (password + TOTP).
# See the "Browser access edge" section of bench/README.md.
#
#   bench/web.sh                          # 1 GiB, 3 runs, 10 s wrk
#   BENCH_MB=256 BENCH_RUNS=1 bench/web.sh
#
# Binaries come from ${CARGO_TARGET_DIR:-REPO/target}/release (built when missing, or always with
# BENCH_BUILD=1). Every process is started by this script and stopped by PID (trap on EXIT).
# Needs nginx (nginx-light), curl, wrk and python3.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BENCH_MB=${BENCH_MB:-1024}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SECS=${BENCH_SECS:-10}
BENCH_BUILD=${BENCH_BUILD:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
WAIT_SECS=${BENCH_WAIT_SECS:-30}
RESULTS_DIR=$BENCH_DIR/results

log() { printf '[web %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

for tool in curl wrk python3; do command -v "$tool" >/dev/null || die "$tool is required"; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx is required (apt-get install nginx-light)"

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
SEKISHO=$TARGET_DIR/release/sekisho
if [[ $BENCH_BUILD == 1 || ! -x $SEKISHO ]]; then
    log "building sekisho (release)"
    (cd "$REPO" && cargo build --release -p sekisho) >&2
fi

WORK=$(mktemp -d /tmp/sekisho-bench-web.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [[ $BENCH_KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until FILE has a line matching PATTERN; prints that line.
wait_line() {
    local file=$1 pattern=$2 deadline=$((SECONDS + WAIT_SECS))
    until grep -m1 -E "$pattern" "$file" 2>/dev/null; do
        ((SECONDS < deadline)) || die "timed out waiting for /$pattern/ in $file"
        sleep 0.1
    done
}
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# nginx with the files.
mkdir -p "$WORK/www" "$WORK/nginx"
head -c $((BENCH_MB << 20)) /dev/urandom >"$WORK/www/big.bin"
head -c 1024 /dev/urandom >"$WORK/www/small.bin"
chmod 755 "$WORK" "$WORK/www" && chmod 644 "$WORK/www"/*.bin # nginx's workers are not root
NGINX_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)

# Relay, back agent, service published for browsers, a user with TOTP.
"$SEKISHO" relay --json-events --listen 127.0.0.1:0 --data-dir "$WORK/relay" >"$WORK/relay.out" 2>"$WORK/relay.log" &
PIDS+=($!)
READY=$(wait_line "$WORK/relay.out" '"event":"ready"')
PORT=$(json "$READY" listen | sed 's/.*://')
export SEKISHO_URL=$(json "$READY" api_url) SEKISHO_CA=$(json "$READY" ca_file) SEKISHO_API_KEY=$(json "$READY" admin_key)
CA=$SEKISHO_CA
ctl() { "$SEKISHO" ctl --json "$@"; }
TOKEN=$(json "$(ctl token create --name site --role back)" token)
"$SEKISHO" agent --json-events --relay "127.0.0.1:$PORT" --token "$TOKEN" --state-dir "$WORK/agent" >"$WORK/agent.out" 2>"$WORK/agent.log" &
PIDS+=($!)
wait_line "$WORK/agent.out" '"event":"connected"' >/dev/null
ctl service create files --agent site --target "http://127.0.0.1:$NGINX_PORT" --browser >/dev/null
ctl policy set files --require 'principal in Group::"staff"' >/dev/null
ctl group add staff --role member >/dev/null
echo 'bench password 1234' | ctl user add bench --group staff --password-stdin >/dev/null
SECRET=$(json "$(ctl user totp bench)" secret)
totp() {
    python3 - "$SECRET" <<'PY'
import base64, hmac, struct, sys, time
key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), "sha1").digest()
o = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
PY
}

# Sign in as a browser would: the console form, then the hand-over to the service host.
HOST=files.default.localhost
CURL=(curl -sS --cacert "$CA" --resolve "localhost:$PORT:127.0.0.1" --resolve "$HOST:$PORT:127.0.0.1")
"${CURL[@]}" -c "$WORK/jar" -b "$WORK/jar" -L -o /dev/null \
    -H "Origin: https://localhost:$PORT" \
    --data-urlencode tenant=default --data-urlencode user=bench --data-urlencode 'password=bench password 1234' \
    --data-urlencode "totp=$(totp)" --data-urlencode "rd=https://$HOST:$PORT/small.bin" \
    "https://localhost:$PORT/login"
EDGE_KEY=$(awk '$6 == "__Host-sekisho-edge" { print $7 }' "$WORK/jar")
[[ -n $EDGE_KEY ]] || die "no browser session after sign-in (see $WORK)"
COOKIE="Cookie: __Host-sekisho-edge=$EDGE_KEY"

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bulk() { # url, extra curl args…
    local url=$1
    shift
    for _ in $(seq "$BENCH_RUNS"); do
        "${CURL[@]}" -f "$@" -o /dev/null -w '%{speed_download}\n' "$url" || die "download of $url failed"
    done | median | awk '{ printf "%.0f", $1 / 1048576 }'
}
rate() { # url, extra wrk args…
    local url=$1
    shift
    for _ in $(seq "$BENCH_RUNS"); do
        wrk -t 2 -c 50 -d "${BENCH_SECS}s" "$@" "$url" >"$WORK/wrk.out"
        ! grep -q "Non-2xx" "$WORK/wrk.out" || die "wrk saw error answers from $url: $(cat "$WORK/wrk.out")"
        awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.out"
    done | median | awk '{ printf "%.0f", $1 }'
}

# Both paths must answer the files before anything is measured.
"${CURL[@]}" -f -o /dev/null "http://127.0.0.1:$NGINX_PORT/small.bin" || die "nginx does not serve the files"
"${CURL[@]}" -f -o /dev/null -H "$COOKIE" "https://$HOST:$PORT/small.bin" || die "the edge does not serve the files"
log "bulk: $BENCH_MB MiB × $BENCH_RUNS"
DIRECT_BULK=$(bulk "http://127.0.0.1:$NGINX_PORT/big.bin")
EDGE_H1=$(bulk "https://$HOST:$PORT/big.bin" --http1.1 -H "$COOKIE")
EDGE_H2=$(bulk "https://$HOST:$PORT/big.bin" --http2 -H "$COOKIE")
log "rate: wrk ${BENCH_SECS}s × $BENCH_RUNS, 50 connections, 1 KiB"
DIRECT_RATE=$(rate "http://127.0.0.1:$NGINX_PORT/small.bin")
EDGE_RATE=$(rate "https://127.0.0.1:$PORT/small.bin" -H "Host: $HOST" -H "$COOKIE")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", (b > 0) ? a / b : 0 }'; }
mkdir -p "$RESULTS_DIR"
{
    echo "# Browser access edge, $(date -u +%Y-%m-%dT%H:%MZ), ${BENCH_MB} MiB, median of $BENCH_RUNS"
    echo
    echo "| path | bulk MB/s | vs direct | 1 KiB requests/s | vs direct |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| direct nginx (plain HTTP) | $DIRECT_BULK | 1.00× | $DIRECT_RATE | 1.00× |"
    echo "| edge, HTTP/1.1 (TLS, policy, audit, tunnel) | $EDGE_H1 | $(ratio "$EDGE_H1" "$DIRECT_BULK") | $EDGE_RATE | $(ratio "$EDGE_RATE" "$DIRECT_RATE") |"
    echo "| edge, HTTP/2 | $EDGE_H2 | $(ratio "$EDGE_H2" "$DIRECT_BULK") | | |"
} | tee "$RESULTS_DIR/web-latest.md"
