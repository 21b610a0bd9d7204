#!/usr/bin/env bash
# SOCKS5 gateway benchmark on loopback (127.0.0.1 only): the load generator straight to the target
# (direct), through the Sekisho relay's SOCKS5 gateway, and through Dante (Debian's dante-server);
# HAProxy (Debian's haproxy: plain TCP forwarding with splice, no SOCKS) is the reference for what a
# user-space relay can reach on this machine.
# See the "SOCKS5 gateway" section of bench/README.md.
#
#   bench/socks.sh                              # 3 runs x 10 s per test
#   BENCH_SECS=5 BENCH_RUNS=1 bench/socks.sh    # quick run
#
# Binaries come from ${CARGO_TARGET_DIR:-REPO/target}/release (built when missing, or always with
# BENCH_BUILD=1; BENCH_SEKISHO=PATH benchmarks another sekisho binary). Every process is started by
# this script and stopped by PID (trap on EXIT).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BENCH_SECS=${BENCH_SECS:-10}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_BUILD=${BENCH_BUILD:-0}
BENCH_CONNS=${BENCH_CONNS:-4}     # parallel connections of the bulk test
BENCH_WORKERS=${BENCH_WORKERS:-32} # concurrent workers of the connection-rate test
DANTE_SERVERS=${DANTE_SERVERS:-1} # danted -N
# BENCH_PIN=1: the proxy gets CPU 1 to itself; the load generator and targets share CPU 0 (direct too),
# so the comparison is "a proxy on its own core" rather than three programs fighting for two cores.
BENCH_PIN=${BENCH_PIN:-0}
LOAD_PIN=()
PROXY_PIN=()
if [[ $BENCH_PIN == 1 ]]; then
    LOAD_PIN=(taskset -c 0)
    PROXY_PIN=(taskset -c 1)
fi
WAIT_SECS=${BENCH_WAIT_SECS:-30}
RESULTS_DIR=$BENCH_DIR/results
TOOLS=$BENCH_DIR/.tools
CONFIGS=(direct sekisho dante haproxy)

log() { printf '[socks %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $BENCH_SECS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECS must be a positive integer (got '$BENCH_SECS')"
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got '$BENCH_RUNS')"
[[ $BENCH_CONNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNS must be a positive integer (got '$BENCH_CONNS')"
[[ $BENCH_WORKERS =~ ^[1-9][0-9]*$ ]] || die "BENCH_WORKERS must be a positive integer (got '$BENCH_WORKERS')"
[[ $DANTE_SERVERS =~ ^[1-9][0-9]*$ ]] || die "DANTE_SERVERS must be a positive integer (got '$DANTE_SERVERS')"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sekisho-socks.XXXXXX")
PIDFILE=$WORK/pids    # "pid starttime" of every process started, for the EXIT trap
RAW=$WORK/raw.tsv     # config, metric, run, value
NOTES=$WORK/notes.tsv # config, note
META=$WORK/meta.tsv   # key, value
: >"$PIDFILE"
: >"$RAW"
: >"$NOTES"
: >"$META"
declare -a MY_PIDS=()
declare -A PID_START=()
declare -A SKIP=()
declare -A PROXY_PIDS=() # config -> pids whose CPU is the proxy's (dante: the mother; children found at runtime)

# ---------------------------------------------------------------- processes

stat_fields() { # stat_fields PID: the fields of /proc/PID/stat after the command name (state is [0])
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    echo "${s##*) }"
}

proc_start_time() {
    local -a f
    read -r -a f <<<"$(stat_fields "$1")" || return 1
    [[ ${#f[@]} -gt 19 ]] || return 1
    echo "${f[19]}"
}

# alive PID STARTTIME: the same process (not a reused PID) is still running (and not a zombie).
alive() {
    local -a f
    read -r -a f <<<"$(stat_fields "$1")" || return 1
    [[ ${#f[@]} -gt 19 && ${f[0]} != Z && ${f[19]} == "$2" ]]
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

remember_pid() { # remember_pid PID: stop it on exit
    local st
    st=$(proc_start_time "$1") || st=0
    echo "$1 $st" >>"$PIDFILE"
    PID_START[$1]=$st
    MY_PIDS+=("$1")
}

# spawn OUT ERR CMD...: start CMD in the background; sets SPAWNED_PID.
spawn() {
    local out=$1 err=$2
    shift 2
    "$@" >"$out" 2>"$err" &
    SPAWNED_PID=$!
    remember_pid "$SPAWNED_PID"
}

# children PID: direct children of PID (from /proc; no tools needed).
children() {
    local t
    for t in /proc/"$1"/task/*/children; do
        cat "$t" 2>/dev/null || true
    done
}

# descendants PID: every process below PID.
descendants() {
    local c
    for c in $(children "$1"); do
        echo "$c"
        descendants "$c"
    done
}

cleanup() {
    local rc=$? pid st i c
    trap - EXIT INT TERM
    # Dante forks helpers: note them (by PID and start time) before their parent goes.
    for ((i = ${#MY_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${MY_PIDS[$i]}
        alive "$pid" "${PID_START[$pid]:-0}" || continue
        for c in $(descendants "$pid"); do
            st=$(proc_start_time "$c") || continue
            echo "$c $st" >>"$PIDFILE"
        done
    done
    for ((i = ${#MY_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${MY_PIDS[$i]}
        stop_pid "$pid" "${PID_START[$pid]:-0}"
    done
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

HELPER=$WORK/helper.py
cat >"$HELPER" <<'PY'
import json, socket, statistics, sys
from lib import field, main, port, ready, write_table  # bench/lib.py

def result(path, *keys):
    # fields of socksload's JSON result, space separated; errors as a short text
    try:
        v = json.loads(open(path).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError) as e:
        print(f"unreadable socksload output: {e}")
        sys.exit(1)
    print(" ".join("nan" if v.get(k) is None else str(v.get(k)) for k in keys))

def kinds(path):
    try:
        v = json.loads(open(path).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return
    print("; ".join(f"{n}× {m}" for m, n in (v.get("error_kinds") or {}).items()))

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
    mt = [l.rstrip("\n").split("\t", 1) for l in open(meta) if "\t" in l]
    order = order.split(",")

    def med(c, k):
        v = data.get(c, {}).get(k)
        return statistics.median(v) if v else None

    def total(c, k):
        v = data.get(c, {}).get(k)
        return sum(v) if v else None

    def cell(c, k, fmt, base=("direct",)):
        v = med(c, k)
        if v is None:
            return "—"
        s = fmt(v)
        rs = []
        for b in base:
            d = med(b, k)
            if b != c and d:
                rs.append(f"{v / d:.2f}× {b}")
        return f"{s} ({', '.join(rs)})" if rs else s

    gbit = lambda v: f"{v:.2f}"
    rate = lambda v: f"{v:,.0f}"
    ms = lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}"
    pct = lambda v: f"{v:.0f}"

    head = ["config", "bulk up Gbit/s", "bulk down Gbit/s", "proxy CPU % (bulk up)", "conns/s",
            "conn p50 ms", "conn p99 ms", "proxy CPU µs/conn", "errors", "notes"]
    rows = []
    for c in order:
        if c not in data and c not in nts:
            continue
        errs = total(c, "errors")
        rows.append([
            c,
            cell(c, "bulk_up", gbit),
            cell(c, "bulk_down", gbit),
            "—" if c == "direct" else (lambda v: "—" if v is None else pct(v))(med(c, "cpu_bulk_pct")),
            cell(c, "conns_per_s", rate, ("direct", "dante")),
            "—" if med(c, "p50_ms") is None else ms(med(c, "p50_ms")),
            "—" if med(c, "p99_ms") is None else ms(med(c, "p99_ms")),
            "—" if c == "direct" else (lambda v: "—" if v is None else f"{v:.0f}")(med(c, "cpu_us_per_conn")),
            "—" if errs is None else f"{errs:.0f}",
            "; ".join(nts.get(c, [])).replace("|", "/"),
        ])
    lines = ["# SOCKS5 gateway loopback benchmark", "", " · ".join(f"{k}: {v}" for k, v in mt), ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    checks = []
    s_up, d_up = med("sekisho", "bulk_up"), med("direct", "bulk_up")
    if s_up is not None and d_up:
        r = s_up / d_up
        checks.append(f"- bulk up: sekisho {r:.2f}× direct (target ≥ 0.80×): {'met' if r >= 0.8 else 'NOT met'}")
    s_dn, d_dn = med("sekisho", "bulk_down"), med("direct", "bulk_down")
    if s_dn is not None and d_dn:
        r = s_dn / d_dn
        checks.append(f"- bulk down: sekisho {r:.2f}× direct (target ≥ 0.80×): {'met' if r >= 0.8 else 'NOT met'}")
    s_c, n_c = med("sekisho", "conns_per_s"), med("dante", "conns_per_s")
    if s_c is not None and n_c:
        r = s_c / n_c
        checks.append(f"- connection rate: sekisho {r:.2f}× dante (target ≥ 1.00×): {'met' if r >= 1 else 'NOT met'}")
    if checks:
        lines += ["Targets:", ""] + checks + [""]
    lines.append("Medians of the runs. Bulk: parallel connections pushing data for the whole test, bytes counted by "
                 "the receiver. conns/s: concurrent workers each looping connect → SOCKS5 handshake → 64-byte "
                 "echo → close; p50/p99 are whole-connection times. Proxy CPU: user+system time of the proxy "
                 "processes (/proc) over the test; 100 % = one core. errors: failed connections, all runs.")
    write_table(lines, out)

if __name__ == "__main__":
    main(globals())
PY

py() { PYTHONPATH="$BENCH_DIR${PYTHONPATH:+:$PYTHONPATH}" python3 "$HELPER" "$@"; }
freeport() { py port; }
note() { printf '%s\t%s\n' "$1" "$2" >>"$NOTES"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }

# wait_for SECS WHAT PID CMD...: polls CMD every 0.2 s while process PID lives; logs and returns 1 on failure.
wait_for() {
    local secs=$1 what=$2 pid=$3
    shift 3
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$pid" "${PID_START[$pid]:-0}"; then
            log "process $pid exited while waiting for $what"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "timed out after ${secs}s waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}

file_has() { [[ -f $1 ]] && grep -q -- "$2" "$1"; }

# port_listening PORT: some socket listens on 127.0.0.1:PORT or *:PORT (reads /proc).
port_listening() {
    local hex
    printf -v hex '%04X' "$1"
    grep -Eq "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:[0-9A-F]+ 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

show() { # show FILE...: the first lines of non-empty files, for a failure message
    local f
    for f in "$@"; do
        if [[ -s $f ]]; then
            log "--- $f"
            head -n 12 "$f" >&2 || true
        fi
    done
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

mkdir -p "$RESULTS_DIR" "$TOOLS/logs"
INSTALL_LOG=$TOOLS/logs
command -v python3 >/dev/null || die "python3 is required (apt-get install python3)"
if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then PATH=$HOME/.cargo/bin:$PATH; fi

BIN_DIR=${CARGO_TARGET_DIR:-$REPO/target}/release
SEKISHO=${BENCH_SEKISHO:-$BIN_DIR/sekisho} # BENCH_SEKISHO: another sekisho binary, e.g. an older build
LOAD=$BIN_DIR/examples/socksload
if [[ $BENCH_BUILD == 1 || ! -x $SEKISHO || ! -x $LOAD ]]; then
    log "building sekisho and the socksload example (release; log: $INSTALL_LOG/socks-build.log)"
    (cd "$REPO" && cargo build --release -p sekisho --bin sekisho --example socksload) >"$INSTALL_LOG/socks-build.log" 2>&1 ||
        {
            tail -n 20 "$INSTALL_LOG/socks-build.log" >&2 || true
            die "release build failed (log: $INSTALL_LOG/socks-build.log)"
        }
fi
[[ -x $SEKISHO && -x $LOAD ]] || die "missing $SEKISHO or $LOAD after the build"

# Dante: Debian's dante-server (binary `danted`, older packages `sockd`).
find_dante() {
    local b
    for b in danted sockd; do
        if command -v "$b" >/dev/null; then
            command -v "$b"
            return 0
        elif [[ -x /usr/sbin/$b ]]; then
            echo "/usr/sbin/$b"
            return 0
        fi
    done
    return 1
}
# apt_install PACKAGE: install from Debian without letting apt start the system service (a temporary
# policy-rc.d, made only if none exists).
apt_install() {
    log "installing $1 from apt (log: $INSTALL_LOG/$1-apt.log)"
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]] && as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'; then
        made_policy=1
    fi
    {
        as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1"
    } >"$INSTALL_LOG/$1-apt.log" 2>&1 || log "apt-get install $1 failed (log: $INSTALL_LOG/$1-apt.log)"
    if [[ $made_policy == 1 ]]; then as_root rm -f /usr/sbin/policy-rc.d || true; fi
}
find_dante >/dev/null || apt_install dante-server
DANTE=$(find_dante) || {
    DANTE=""
    SKIP[dante]="skipped: dante-server could not be installed"
}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[[ -x $HAPROXY ]] || apt_install haproxy
[[ -x $HAPROXY ]] || SKIP[haproxy]="skipped: haproxy could not be installed"

# ---------------------------------------------------------------- metadata

rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | head -n 1)
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta nproc "$(nproc)"
meta kernel "$(uname -r)"
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
meta runs "${BENCH_RUNS} × ${BENCH_SECS} s"
meta load "bulk ${BENCH_CONNS} conns, connrate ${BENCH_WORKERS} workers"
meta sekisho "$("$SEKISHO" --version 2>/dev/null | awk '{print $NF}') (git $rev${dirty:+, dirty}${BENCH_SEKISHO:+; binary $SEKISHO})"
if [[ -z ${SKIP[haproxy]:-} ]]; then meta haproxy "$("$HAPROXY" -v 2>&1 | head -n 1 | awk '{print $3}')"; fi
if [[ -n $DANTE ]]; then meta dante "$("$DANTE" -v 2>&1 | head -n 1 | awk '{print $2}') (-N $DANTE_SERVERS)"; fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- targets and proxies

CLK_TCK=$(getconf CLK_TCK)

spawn "$WORK/serve.out" "$WORK/serve.err" "${LOAD_PIN[@]}" "$LOAD" serve --bulk 127.0.0.1:0 --echo 127.0.0.1:0
SERVE_PID=$SPAWNED_PID
wait_for "$WAIT_SECS" "socksload serve ready line" "$SERVE_PID" file_has "$WORK/serve.out" '"event":"ready"' ||
    {
        show "$WORK/serve.err"
        die "socksload serve did not start"
    }
BULK_ADDR=$(py ready "$WORK/serve.out" bulk)
ECHO_ADDR=$(py ready "$WORK/serve.out" echo)
log "targets: bulk $BULK_ADDR, echo $ECHO_ADDR"

# Sekisho: relay with the gateway, a staff group, user bench, a gateway:use key, a gateway service
# with a policy (one condition, one denied domain), so every connection pays a Cedar decision.
SK=$WORK/sekisho
mkdir -p "$SK"
setup_sekisho() {
    spawn "$SK/relay.out" "$SK/relay.err" "${PROXY_PIN[@]}" env RUST_LOG=warn RUST_BACKTRACE=0 "$SEKISHO" relay --json-events \
        --listen 127.0.0.1:0 --data-dir "$SK/data" --socks-listen 127.0.0.1:0 --socks-allow-private
    local relay=$SPAWNED_PID
    wait_for "$WAIT_SECS" "relay ready line" "$relay" file_has "$SK/relay.out" '"event":"ready"' ||
        {
            show "$SK/relay.out" "$SK/relay.err"
            return 1
        }
    SEKISHO_SOCKS=$(py ready "$SK/relay.out" socks) || {
        log "the relay's ready line has no socks address"
        return 1
    }
    SEKISHO_URL=$(py ready "$SK/relay.out" api_url)
    SEKISHO_CA=$(py ready "$SK/relay.out" ca_file)
    SEKISHO_API_KEY=$(py ready "$SK/relay.out" admin_key)
    export SEKISHO_URL SEKISHO_CA SEKISHO_API_KEY
    local ctl=(env RUST_LOG=warn RUST_BACKTRACE=0 "$SEKISHO" ctl)
    {
        "${ctl[@]}" group add staff --role member &&
            printf 'bench-password-0123\n' | "${ctl[@]}" user add bench --group staff --password-stdin &&
            "${ctl[@]}" --json apikey create bench-gateway --scope gateway:use --user bench >"$SK/key.json" &&
            "${ctl[@]}" service create internet --target socks &&
            "${ctl[@]}" policy set internet --require 'principal in Group::"staff"' --deny-domain blocked.example
    } >"$SK/ctl.out" 2>"$SK/ctl.err" || {
        show "$SK/ctl.out" "$SK/ctl.err"
        return 1
    }
    SEKISHO_KEY=$(py field key <"$SK/key.json") || {
        log "ctl apikey create --json printed no key"
        return 1
    }
    PROXY_PIDS[sekisho]=$relay
    log "sekisho: relay pid $relay, gateway $SEKISHO_SOCKS"
}
if ! setup_sekisho; then
    SKIP[sekisho]="skipped: setup failed (see the log above)"
    BENCH_KEEP=1
fi

# Dante: one config on a free port, no authentication, CONNECT within 127.0.0.0/8.
DN=$WORK/dante
mkdir -p "$DN"
setup_dante() {
    local port
    port=$(freeport)
    cat >"$DN/danted.conf" <<EOF
logoutput: stderr
internal: 127.0.0.1 port = $port
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}
socks pass {
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: error
}
EOF
    if ! "$DANTE" -V -f "$DN/danted.conf" >"$DN/check.log" 2>&1; then
        show "$DN/check.log"
        return 1
    fi
    spawn "$DN/danted.out" "$DN/danted.err" "${PROXY_PIN[@]}" "$DANTE" -f "$DN/danted.conf" -N "$DANTE_SERVERS" -p "$DN/danted.pid"
    local pid=$SPAWNED_PID
    wait_for "$WAIT_SECS" "danted on 127.0.0.1:$port" "$pid" port_listening "$port" ||
        {
            show "$DN/danted.err"
            return 1
        }
    DANTE_SOCKS=127.0.0.1:$port
    PROXY_PIDS[dante]=$pid
    log "dante: pid $pid, 127.0.0.1:$port"
}
if [[ -z ${SKIP[dante]:-} ]] && ! setup_dante; then
    SKIP[dante]="skipped: danted did not start (see the log above)"
fi

# HAProxy: TCP forwarding (no SOCKS, no authentication, no decision) to the same targets, with
# splice, on as many threads as there are cores.
HP=$WORK/haproxy
mkdir -p "$HP"
setup_haproxy() {
    local bulk_port echo_port
    bulk_port=$(freeport)
    echo_port=$(freeport)
    cat >"$HP/haproxy.cfg" <<EOF
global
    # maxconn: derived from the open-file limit
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bulk
    bind 127.0.0.1:$bulk_port
    server target $BULK_ADDR
listen echo
    bind 127.0.0.1:$echo_port
    server target $ECHO_ADDR
EOF
    if ! "$HAPROXY" -c -q -f "$HP/haproxy.cfg" >"$HP/check.log" 2>&1; then
        show "$HP/check.log"
        return 1
    fi
    spawn "$HP/haproxy.out" "$HP/haproxy.err" "${PROXY_PIN[@]}" "$HAPROXY" -db -f "$HP/haproxy.cfg"
    local pid=$SPAWNED_PID
    wait_for "$WAIT_SECS" "haproxy on 127.0.0.1:$bulk_port" "$pid" port_listening "$bulk_port" ||
        {
            show "$HP/haproxy.err"
            return 1
        }
    HAPROXY_BULK=127.0.0.1:$bulk_port
    HAPROXY_ECHO=127.0.0.1:$echo_port
    PROXY_PIDS[haproxy]=$pid
    log "haproxy: pid $pid, bulk 127.0.0.1:$bulk_port, echo 127.0.0.1:$echo_port"
}
if [[ -z ${SKIP[haproxy]:-} ]] && ! setup_haproxy; then
    SKIP[haproxy]="skipped: haproxy did not start (see the log above)"
fi

# ---------------------------------------------------------------- measurements

# cpu_ticks PID: utime+stime of PID, of its reaped children, and of its live descendants.
cpu_ticks() {
    local total=0 p
    local -a f
    [[ -n ${1:-} ]] || {
        echo 0
        return
    }
    read -r -a f <<<"$(stat_fields "$1")" || true
    if ((${#f[@]} > 14)); then total=$((f[11] + f[12] + f[13] + f[14])); fi
    for p in $(descendants "$1"); do
        read -r -a f <<<"$(stat_fields "$p")" || continue
        if ((${#f[@]} > 12)); then total=$((total + f[11] + f[12])); fi
    done
    echo "$total"
}

via_args() { # via_args CONFIG bulk|echo: socksload flags for the target and path (the API key goes by environment)
    local target=$BULK_ADDR
    [[ $2 == echo ]] && target=$ECHO_ADDR
    case $1 in
        direct) printf '%s\n' --target "$target" ;;
        sekisho) printf '%s\n' --target "$target" --proxy "$SEKISHO_SOCKS" --user bench ;;
        dante) printf '%s\n' --target "$target" --proxy "$DANTE_SOCKS" ;;
        haproxy) if [[ $2 == bulk ]]; then printf '%s\n' --target "$HAPROXY_BULK"; else printf '%s\n' --target "$HAPROXY_ECHO"; fi ;;
    esac
}

runnable() { [[ -z ${SKIP[$1]:-} ]]; }

first_errors() { # first_errors CONFIG WHAT RUN FILE: a note with the error kinds, if any
    local k
    k=$(py kinds "$4")
    if [[ -n $k ]]; then note "$1" "$2 run $3: ${k:0:200}"; fi
}

measure_bulk() { # measure_bulk CONFIG up|down RUN
    local cfg=$1 dir=$2 r=$3 out=$WORK/$1-bulk-$2-$3.json c0 c1 t0 t1 res gbit errs
    local -a via
    mapfile -t via < <(via_args "$cfg" bulk)
    c0=$(cpu_ticks "${PROXY_PIDS[$cfg]:-}")
    t0=$(date +%s.%N)
    SOCKSLOAD_PASS=${SEKISHO_KEY:-} timeout -k 5 $((BENCH_SECS + 40)) "${LOAD_PIN[@]}" "$LOAD" bulk "${via[@]}" --secs "$BENCH_SECS" \
        --conns "$BENCH_CONNS" --dir "$dir" >"$out" 2>"$out.err" || true
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "${PROXY_PIDS[$cfg]:-}")
    if ! res=$(py result "$out" gbit_s errors); then
        log "$cfg: bulk $dir run $r failed: $res $(head -c 200 "$out.err")"
        note "$cfg" "bulk $dir run $r failed"
        return 0
    fi
    read -r gbit errs <<<"$res"
    record "$cfg" "bulk_$dir" "$r" "$gbit"
    record "$cfg" errors "$r" "$errs"
    first_errors "$cfg" "bulk $dir" "$r" "$out"
    local cpu=""
    if [[ -n ${PROXY_PIDS[$cfg]:-} ]]; then
        cpu=$(python3 -c "print(f'{($c1 - $c0) / $CLK_TCK / ($t1 - $t0) * 100:.0f}')")
        [[ $dir == up ]] && record "$cfg" cpu_bulk_pct "$r" "$cpu"
    fi
    log "$cfg: bulk $dir run $r: $(python3 -c "print(f'{$gbit:.2f}')") Gbit/s, $errs errors${cpu:+, proxy CPU $cpu %}"
}

measure_connrate() { # measure_connrate CONFIG RUN
    local cfg=$1 r=$2 out=$WORK/$1-connrate-$2.json c0 c1 res rate conns p50 p99 errs
    local -a via
    mapfile -t via < <(via_args "$cfg" echo)
    c0=$(cpu_ticks "${PROXY_PIDS[$cfg]:-}")
    SOCKSLOAD_PASS=${SEKISHO_KEY:-} timeout -k 5 $((BENCH_SECS + 60)) "${LOAD_PIN[@]}" "$LOAD" connrate "${via[@]}" --secs "$BENCH_SECS" \
        --workers "$BENCH_WORKERS" >"$out" 2>"$out.err" || true
    c1=$(cpu_ticks "${PROXY_PIDS[$cfg]:-}")
    if ! res=$(py result "$out" conns_per_s conns p50_ms p99_ms errors); then
        log "$cfg: connrate run $r failed: $res $(head -c 200 "$out.err")"
        note "$cfg" "connrate run $r failed"
        return 0
    fi
    read -r rate conns p50 p99 errs <<<"$res"
    record "$cfg" conns_per_s "$r" "$rate"
    [[ $p50 != nan ]] && record "$cfg" p50_ms "$r" "$p50"
    [[ $p99 != nan ]] && record "$cfg" p99_ms "$r" "$p99"
    record "$cfg" errors "$r" "$errs"
    first_errors "$cfg" connrate "$r" "$out"
    local cpu=""
    if [[ -n ${PROXY_PIDS[$cfg]:-} ]] && ((conns > 0)); then
        cpu=$(python3 -c "print(f'{($c1 - $c0) / $CLK_TCK / $conns * 1e6:.0f}')")
        record "$cfg" cpu_us_per_conn "$r" "$cpu"
    fi
    log "$cfg: connrate run $r: $(python3 -c "print(f'{$rate:,.0f} conns/s, p99 {float(\"$p99\"):.1f} ms')"), $errs errors${cpu:+, proxy CPU $cpu µs/conn}"
}

for cfg in "${CONFIGS[@]}"; do
    if ! runnable "$cfg"; then
        log "$cfg: ${SKIP[$cfg]}"
        note "$cfg" "${SKIP[$cfg]}"
    fi
done

# Tests are interleaved (each run goes through every config) so drift hits all configs alike.
for r in $(seq 1 "$BENCH_RUNS"); do
    for dir in up down; do
        for cfg in "${CONFIGS[@]}"; do
            runnable "$cfg" || continue
            measure_bulk "$cfg" "$dir" "$r"
            sleep 1
        done
    done
done
for r in $(seq 1 "$BENCH_RUNS"); do
    for cfg in "${CONFIGS[@]}"; do
        runnable "$cfg" || continue
        measure_connrate "$cfg" "$r"
        sleep 2 # let the TIME_WAIT pile settle a little
    done
done

for cfg in sekisho dante haproxy; do
    p=${PROXY_PIDS[$cfg]:-}
    if [[ -n $p ]] && ! alive "$p" "${PID_START[$p]:-0}"; then note "$cfg" "proxy process $p exited during the run"; fi
done
if [[ -n ${PROXY_PIDS[sekisho]:-} ]]; then
    rss=$(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/${PROXY_PIDS[sekisho]}/status" 2>/dev/null || true)
    [[ -n $rss ]] && meta "sekisho relay peak RSS" "$rss"
fi

echo
stamp=$(date -u +%Y%m%d-%H%M%S)
py table "$RAW" "$NOTES" "$META" "$(
    IFS=,
    echo "${CONFIGS[*]}"
)" "$RESULTS_DIR/socks-$stamp.md"
cp "$RAW" "$RESULTS_DIR/socks-$stamp.raw.tsv"
log "table written to $RESULTS_DIR/socks-$stamp.md (raw per-run values: socks-$stamp.raw.tsv)"
grep -q "^direct	conns_per_s	" "$RAW" || die "the direct baseline failed; see the notes in the table"
