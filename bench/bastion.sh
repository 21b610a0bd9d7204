#!/usr/bin/env bash
# SSH bastion benchmark on loopback (127.0.0.1 only): scp of one large file straight to a real sshd
# (direct), through the relay's SSH bastion with the target behind a back agent (agent), and through
# the bastion with the target dialled from the relay itself (relay). Both scp protocols (SFTP, the
# default, and legacy `scp -O`), both directions, every download and upload checked by SHA-256.
# See the "SSH bastion (scp)" section of bench/README.md.
#
#   bench/bastion.sh                                # 512 MiB, 3 runs
#   BENCH_MB=128 BENCH_RUNS=1 bench/bastion.sh      # quick run
#
# Binaries come from ${CARGO_TARGET_DIR:-REPO/target}/release (built when missing, or always with
# BENCH_BUILD=1; BENCH_SEKISHO=PATH benchmarks another sekisho binary). Every process is started by
# this script and stopped by PID (trap on EXIT). Needs OpenSSH (ssh, scp, sshd), python3, and root
# or the right to run sshd on a free port as the current user (the login is the current user).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BENCH_MB=${BENCH_MB:-512}     # size of the file moved, MiB
BENCH_RUNS=${BENCH_RUNS:-3}   # runs per transfer; the table shows medians
BENCH_KEEP=${BENCH_KEEP:-0}   # 1 keeps the work directory (logs, configs)
BENCH_BUILD=${BENCH_BUILD:-0} # 1 runs cargo build even when the binary exists
# Cipher rows, comma separated: `default` lets every hop negotiate (OpenSSH client and sshd defaults,
# russh's order on the bastion's hops); a cipher name forces it on every hop: `-c` for the client and
# `Ciphers` in that row's sshd, so the bastion's own (russh) client must pick it too.
BENCH_CIPHERS=${BENCH_CIPHERS:-default,aes256-gcm@openssh.com}
BENCH_PATHS=${BENCH_PATHS:-direct,agent,relay} # direct sshd; bastion via back agent; bastion dialling from the relay
BENCH_PROTOS=${BENCH_PROTOS:-sftp,legacy}      # scp (SFTP protocol) and scp -O (legacy rcp protocol)
# BENCH_PIN=1: relay and agent get CPU 1; ssh, scp and sshd share CPU 0 (direct too).
BENCH_PIN=${BENCH_PIN:-0}
# BENCH_PERF=1: after the measured runs, one extra (uncounted) transfer per bastion configuration under
# `perf record` of the relay (and agent); the top symbols go to bench/results/bastion-perf-*.txt.
BENCH_PERF=${BENCH_PERF:-0}
WAIT_SECS=${BENCH_WAIT_SECS:-30}
XFER_TIMEOUT=${BENCH_XFER_TIMEOUT:-$((BENCH_MB < 120 ? 120 : BENCH_MB))} # seconds per scp
RESULTS_DIR=$BENCH_DIR/results
LOAD_PIN=()
PROXY_PIN=()
if [[ $BENCH_PIN == 1 ]]; then
    LOAD_PIN=(taskset -c 0)
    PROXY_PIN=(taskset -c 1)
fi

log() { printf '[bastion %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $BENCH_MB =~ ^[1-9][0-9]*$ ]] || die "BENCH_MB must be a positive integer (got '$BENCH_MB')"
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got '$BENCH_RUNS')"
[[ $XFER_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_XFER_TIMEOUT must be a positive integer (got '$XFER_TIMEOUT')"
IFS=, read -r -a CIPHERS <<<"$BENCH_CIPHERS"
IFS=, read -r -a PATHS <<<"$BENCH_PATHS"
IFS=, read -r -a PROTOS <<<"$BENCH_PROTOS"
((${#CIPHERS[@]} > 0 && ${#PATHS[@]} > 0 && ${#PROTOS[@]} > 0)) || die "BENCH_CIPHERS, BENCH_PATHS and BENCH_PROTOS must not be empty"
for p in "${PATHS[@]}"; do [[ $p =~ ^(direct|agent|relay)$ ]] || die "unknown path '$p' in BENCH_PATHS (direct, agent, relay)"; done
for p in "${PROTOS[@]}"; do [[ $p =~ ^(sftp|legacy)$ ]] || die "unknown protocol '$p' in BENCH_PROTOS (sftp, legacy)"; done
for c in "${CIPHERS[@]}"; do [[ $c =~ ^[a-z0-9@.-]+$ ]] || die "odd cipher name '$c' in BENCH_CIPHERS"; done

for t in ssh scp ssh-keygen python3; do command -v "$t" >/dev/null || die "$t is required"; done
SSHD=$(command -v sshd || true)
[[ -n $SSHD ]] || SSHD=/usr/sbin/sshd
[[ -x $SSHD ]] || die "sshd is required (apt-get install openssh-server)"

# The work directory holds the file and its copies: tmpfs when there is one, so the disk is not measured.
if [[ -n ${BENCH_TMP:-} ]]; then
    TMP_BASE=$BENCH_TMP
elif [[ -d /dev/shm && -w /dev/shm ]]; then
    TMP_BASE=/dev/shm
else
    TMP_BASE=${TMPDIR:-/tmp}
fi
WORK=$(mktemp -d "$TMP_BASE/sekisho-bastion.XXXXXX")
chmod 700 "$WORK"
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
declare -A SKIP=()       # config -> why it is skipped
declare -A CM=()         # config -> ControlPath of its master connection
declare -A MASTER_PID=() # config -> pid of its ssh master
declare -A LOGIN=()      # config -> user@host
declare -A PORT=()       # config -> port ssh dials (sshd or the bastion)
declare -A SSHD_PID=()   # cipher -> sshd listener
declare -A SSHD_PORT=()  # cipher -> its port
declare -A SSHD_LOG=()   # cipher -> its log

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

# spawn OUT ERR CMD...: start CMD in the background (stdin from /dev/null); sets SPAWNED_PID.
spawn() {
    local out=$1 err=$2
    shift 2
    "$@" </dev/null >"$out" 2>"$err" &
    SPAWNED_PID=$!
    remember_pid "$SPAWNED_PID"
}

children() { # children PID: direct children of PID (from /proc)
    local t
    for t in /proc/"$1"/task/*/children; do
        cat "$t" 2>/dev/null || true
    done
}

descendants() { # descendants PID: every process below PID
    local c
    for c in $(children "$1"); do
        echo "$c"
        descendants "$c"
    done
}

cleanup() {
    local rc=$? pid st i c
    trap - EXIT INT TERM
    # sshd forks a process per connection: note them (by PID and start time) before their parent goes.
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
        rm -f "$WORK"/*.bin 2>/dev/null || true # the data files, not the logs
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
import base64, hashlib, hmac, json, os, re, resource, socket, statistics, struct, subprocess, sys, time
from lib import field, main, port, ready, write_table  # bench/lib.py

def totp(secret_file):
    # RFC 6238: HMAC-SHA1, 6 digits, 30 s steps, for the current step
    s = open(secret_file).read().strip().replace(" ", "").upper()
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    print(f"{(struct.unpack('>I', mac[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}")

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    print(h.hexdigest())

def run(timeout, log, *cmd):
    # runs cmd; prints "rc wall_seconds cpu_seconds" (cpu: user+system of cmd and its children)
    t0 = time.monotonic()
    with open(log, "ab") as f:
        try:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=float(timeout)).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(rc, f"{wall:.4f}", f"{ru.ru_utime + ru.ru_stime:.4f}")

def kex(path, direction, start="0"):
    # the cipher of the last `kex: DIRECTION cipher: X` debug line after byte offset `start`
    with open(path, errors="replace") as f:
        f.seek(int(start))
        found = re.findall(r"kex: " + re.escape(direction) + r" cipher: (\S+)", f.read())
    if not found:
        sys.exit(1)
    print(found[-1])

def evidence(sha):
    # recordings on stdin (ctl --json recording list): "COUNT REST" where COUNT is the scp/sftp file
    # operations (read or write) carrying `sha`, and REST names other outcomes (malformed trackers)
    ok, other = 0, {}
    for r in json.load(sys.stdin):
        if r.get("kind") not in ("scp", "sftp"):
            continue
        for f in json.loads(r.get("files") or "[]"):
            if f.get("op") in ("read", "write") and f.get("sha256") == sha:
                ok += 1
            elif f.get("op") in ("malformed", "error") or (f.get("op") in ("read", "write") and not f.get("sha256")):
                key = f"{r['kind']} {f.get('op')}: {f.get('path', '')[:120]}"
                other[key] = other.get(key, 0) + 1
    print(ok, "; ".join(f"{n}× {k}" for k, n in other.items()) or "-")

def table(raw, notes, meta, ciphers, paths, protos, mb, out):
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
    mtd = dict((k, v) for k, v in mt)

    def med(c, k):
        v = data.get(c, {}).get(k)
        return statistics.median(v) if v else None

    def num(v, fmt="{:.1f}"):
        return "—" if v is None else fmt.format(v)

    head = ["ciphers (client hop / target hop)", "scp", "direction", "path", "MiB/s", "× direct", "runs",
            "relay CPU s", "agent CPU s", "client CPU s (scp + ssh)", "sshd CPU s", "× direct by CPU", "notes"]

    def total_cpu(c, k, path):
        parts = [med(c, f"{k}_client_cpu"), med(c, f"{k}_sshd_cpu")]
        if path != "direct":
            parts.append(med(c, f"{k}_relay_cpu"))
        if path == "agent":
            parts.append(med(c, f"{k}_agent_cpu"))
        return None if any(x is None for x in parts) else sum(parts)
    lines = ["# SSH bastion scp benchmark (loopback)", "",
             " · ".join(f"{k}: {v}" for k, v in mt), "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * 4 + ["---:"] * 8 + ["---"]) + "|"]
    checks = []
    for cipher in ciphers.split(","):
        for proto in protos.split(","):
            for d in ("up", "down"):
                base = med(f"{cipher}|direct", f"{proto}_{d}_mibs")
                base_cpu = total_cpu(f"{cipher}|direct", f"{proto}_{d}", "direct")
                for path in paths.split(","):
                    c = f"{cipher}|{path}"
                    k = f"{proto}_{d}"
                    v = med(c, f"{k}_mibs")
                    n = len(data.get(c, {}).get(f"{k}_mibs", []))
                    ratio = v / base if v is not None and base and path != "direct" else None
                    hops = mtd.get(f"cipher {c}", "?")
                    keys = [f"{pp}_{dd} " for pp in protos.split(",") for dd in ("up", "down")]
                    note = "; ".join(x for x in nts.get(c, [])
                                     if x.startswith(f"{k} ") or not any(x.startswith(kk) for kk in keys))
                    lines.append("| " + " | ".join([
                        f"{cipher}: {hops}", "scp" if proto == "sftp" else "scp -O", d, path,
                        num(v), "—" if ratio is None else f"{ratio:.2f}×", str(n),
                        "—" if path == "direct" else num(med(c, f"{k}_relay_cpu"), "{:.2f}"),
                        "—" if path != "agent" else num(med(c, f"{k}_agent_cpu"), "{:.2f}"),
                        num(med(c, f"{k}_client_cpu"), "{:.2f}"),
                        num(med(c, f"{k}_sshd_cpu"), "{:.2f}"),
                        "—" if path == "direct" or not base_cpu or total_cpu(c, k, path) is None
                        else f"{base_cpu / total_cpu(c, k, path):.2f}×",
                        note.replace("|", "/"),
                    ]) + " |")
                    if ratio is not None:
                        checks.append(f"- {cipher}, {'scp' if proto == 'sftp' else 'scp -O'} {d}, via {path}: "
                                      f"{ratio:.3f}× direct (target ≥ 0.70×): {'met' if ratio >= 0.7 else 'NOT met'}")
    lines.append("")
    general = [n for c, ns in nts.items() for n in ns if c == "all"]
    if general:
        lines += ["Notes:", ""] + [f"- {n}" for n in general] + [""]
    if checks:
        lines += ["Target (bastion ≥ 0.7× direct):", ""] + checks + [""]
    lines.append(f"Medians of the runs; each transfer moves one {mb} MiB file of random data (tmpfs to tmpfs) "
                 "over an already authenticated ControlMaster connection, and is counted only when the "
                 "SHA-256 of the copy equals the original's. MiB/s: file size / wall time of the scp "
                 "command. CPU s: user+system seconds per transfer from /proc (relay and agent processes; "
                 "sshd: the listener and its live descendants, reaped children included; client: scp and "
                 "its ssh from getrusage, plus the ssh master). × direct by CPU: the direct transfer's CPU seconds "
                 "(client + sshd) over this path's (client + sshd + relay + agent), the throughput ratio to expect "
                 "when every core is busy (steadier than MiB/s on a shared machine). Path `agent`: ssh → bastion (relay) → tunnel "
                 "→ back agent → sshd; `relay`: the bastion dials sshd itself; `direct`: ssh → sshd.")
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

port_listening() { # port_listening PORT: some socket listens on 127.0.0.1:PORT or *:PORT (reads /proc)
    local hex
    printf -v hex '%04X' "$1"
    grep -Eq "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:[0-9A-F]+ 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

show() { # show FILE...: the last lines of non-empty files, for a failure message
    local f
    for f in "$@"; do
        if [[ -s $f ]]; then
            log "--- $f"
            tail -n 15 "$f" >&2 || true
        fi
    done
}

# cpu_ticks PID: utime+stime+cutime+cstime of PID and of each live descendant (a reaped child's time is
# in its parent's cutime/cstime, a live one's in its own utime/stime: nothing is counted twice).
cpu_ticks() {
    local total=0 top p
    local -a f
    for top in "$@"; do
        [[ -n $top ]] || continue
        for p in "$top" $(descendants "$top"); do
            read -r -a f <<<"$(stat_fields "$p")" || continue
            if ((${#f[@]} > 14)); then total=$((total + f[11] + f[12] + f[13] + f[14])); fi
        done
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
secs() { python3 -c "print(f'{($2 - $1) / $CLK_TCK:.3f}')"; } # secs T0 T1: ticks to seconds

# ---------------------------------------------------------------- build and metadata

mkdir -p "$RESULTS_DIR"
if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then PATH=$HOME/.cargo/bin:$PATH; fi
BIN_DIR=${CARGO_TARGET_DIR:-$REPO/target}/release
SEKISHO=${BENCH_SEKISHO:-$BIN_DIR/sekisho}
if [[ -z ${BENCH_SEKISHO:-} && ($BENCH_BUILD == 1 || ! -x $SEKISHO) ]]; then
    log "building sekisho (release; log: $WORK/build.log)"
    (cd "$REPO" && cargo build --release -p sekisho --bin sekisho) >"$WORK/build.log" 2>&1 ||
        {
            tail -n 20 "$WORK/build.log" >&2 || true
            die "release build failed"
        }
fi
[[ -x $SEKISHO ]] || die "missing $SEKISHO"
if [[ $BENCH_PERF == 1 ]] && ! command -v perf >/dev/null; then
    log "BENCH_PERF=1 but perf is not installed (Debian: apt-get install linux-perf); no profiles"
    BENCH_PERF=0
fi

ME=$(id -un)
rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | head -n 1)
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta nproc "$(nproc)"
meta kernel "$(uname -r)"
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
meta load "$(cut -d' ' -f1-3 /proc/loadavg)"
meta file "${BENCH_MB} MiB × ${BENCH_RUNS} runs"
meta openssh "$(ssh -V 2>&1 | cut -d, -f1)"
meta sekisho "$("$SEKISHO" --version 2>/dev/null | awk '{print $NF}') (git $rev${dirty:+, dirty}${BENCH_SEKISHO:+; binary $SEKISHO})"
[[ $BENCH_PIN == 1 ]] && meta pinning "relay+agent CPU 1, ssh/scp/sshd CPU 0"

# ---------------------------------------------------------------- the file, keys, sshd

SRC=$WORK/src.bin
log "work directory $WORK; writing $BENCH_MB MiB of random data"
head -c $((BENCH_MB * 1048576)) /dev/urandom >"$SRC"
SRC_SHA=$(py sha256 "$SRC")

keygen() { ssh-keygen -q -t ed25519 -N '' -C bench -f "$1"; }
keygen "$WORK/direct_key" # the benchmark's own key to sshd
keygen "$WORK/target_key" # the bastion's login to sshd
cat "$WORK/direct_key.pub" "$WORK/target_key.pub" >"$WORK/authorized_keys"
mkdir -p /run/sshd 2>/dev/null || true # sshd's privilege-separation directory

# start_sshd CIPHER: one sshd per cipher row; a named cipher is the only one it accepts.
start_sshd() {
    local c=$1 d port
    d=$WORK/sshd-${#SSHD_PID[@]}
    mkdir -p "$d"
    keygen "$d/host_key"
    port=$(freeport)
    {
        printf 'ListenAddress 127.0.0.1\nPort %s\nHostKey %s\nAuthorizedKeysFile %s\n' "$port" "$d/host_key" "$WORK/authorized_keys"
        printf 'PidFile none\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n'
        printf 'KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\nLogLevel DEBUG1\nMaxSessions 100\n' # DEBUG1: the kex lines name the cipher
        [[ $c == default ]] || printf 'Ciphers %s\n' "$c"
    } >"$d/sshd_config"
    "$SSHD" -t -f "$d/sshd_config" >"$d/check.log" 2>&1 || {
        show "$d/check.log"
        return 1
    }
    # -E, not -e: with -e a session's debug lines go to its stderr, i.e. into the channel, where they
    # would reach the scp client and the bastion's recorder (whose scp tracker then gives up).
    spawn "$d/sshd.out" "$d/sshd.err" "${LOAD_PIN[@]}" "$SSHD" -D -E "$d/sshd.log" -f "$d/sshd_config"
    local pid=$SPAWNED_PID
    wait_for "$WAIT_SECS" "sshd on 127.0.0.1:$port" "$pid" port_listening "$port" || {
        show "$d/sshd.err" "$d/sshd.log"
        return 1
    }
    SSHD_PID[$c]=$pid
    SSHD_PORT[$c]=$port
    SSHD_LOG[$c]=$d/sshd.log
    log "sshd ($c) pid $pid on 127.0.0.1:$port"
}
for c in "${CIPHERS[@]}"; do
    start_sshd "$c" || die "sshd for cipher row '$c' did not start"
done

# ---------------------------------------------------------------- relay, agent, services, users

SK=$WORK/sekisho
mkdir -p "$SK"
RELAY_PID=""
AGENT_PID=""
sk_ctl() { env RUST_LOG=warn RUST_BACKTRACE=0 SEKISHO_LANG=en "$SEKISHO" ctl "$@" 2>>"$SK/ctl.err"; }

need_bastion=0
for p in "${PATHS[@]}"; do [[ $p == direct ]] || need_bastion=1; done
if [[ $need_bastion == 1 ]]; then
    spawn "$SK/relay.out" "$SK/relay.err" "${PROXY_PIN[@]}" env RUST_LOG=warn RUST_BACKTRACE=0 "$SEKISHO" relay --json-events \
        --listen 127.0.0.1:0 --ssh-listen 127.0.0.1:0 --data-dir "$SK/data"
    RELAY_PID=$SPAWNED_PID
    wait_for "$WAIT_SECS" "relay ready line" "$RELAY_PID" file_has "$SK/relay.out" '"event":"ready"' ||
        {
            show "$SK/relay.out" "$SK/relay.err"
            die "the relay did not start"
        }
    RELAY_ADDR=$(py ready "$SK/relay.out" listen)
    BASTION=$(py ready "$SK/relay.out" ssh) || die "the relay's ready line has no ssh address"
    SEKISHO_URL=$(py ready "$SK/relay.out" api_url)
    SEKISHO_CA=$(py ready "$SK/relay.out" ca_file)
    SEKISHO_API_KEY=$(py ready "$SK/relay.out" admin_key)
    export SEKISHO_URL SEKISHO_CA SEKISHO_API_KEY
    log "relay pid $RELAY_PID, bastion $BASTION"
    sk_ctl group add bench --role member >/dev/null || die "ctl group add failed: $(tail -n 3 "$SK/ctl.err")"
    for p in "${PATHS[@]}"; do
        if [[ $p == agent ]]; then
            tok=$(sk_ctl token create --name site --role both) || die "ctl token create failed: $(tail -n 3 "$SK/ctl.err")"
            spawn "$SK/agent.out" "$SK/agent.err" "${PROXY_PIN[@]}" env RUST_LOG=warn RUST_BACKTRACE=0 "$SEKISHO" agent \
                --relay "$RELAY_ADDR" --token "$tok" --state-dir "$SK/agent" --json-events
            AGENT_PID=$SPAWNED_PID
            wait_for "$WAIT_SECS" "agent connected" "$AGENT_PID" file_has "$SK/agent.out" '"event":"connected"' ||
                {
                    show "$SK/agent.out" "$SK/agent.err"
                    die "the agent did not connect"
                }
            log "agent pid $AGENT_PID connected"
        fi
    done
fi

# setup_bastion_target CIPHER PATH CFG I: a service on that row's sshd (behind the agent, or dialled by
# the relay), the bastion's login to it, a policy, and a user (password, TOTP, key) of its own: a TOTP
# code is spent once per user and 30-s step, and each configuration logs in once.
setup_bastion_target() {
    local c=$1 p=$2 cfg=$3 i=$4 svc user
    svc=t$i-$p
    user=u$i$p
    local -a via=()
    [[ $p == agent ]] && via=(--agent site)
    if ! {
        sk_ctl service create "$svc" "${via[@]}" --target "ssh://127.0.0.1:${SSHD_PORT[$c]}" >/dev/null &&
            sk_ctl service login "$svc" --login "$ME" --key-file "$WORK/target_key" >/dev/null &&
            sk_ctl policy set "$svc" --require true >/dev/null &&
            printf 'bench-password-0123\n' | sk_ctl user add "$user" --group bench --password-stdin >/dev/null &&
            sk_ctl --json user totp "$user" | py field secret >"$SK/$user.totp" &&
            keygen "$SK/$user.key" &&
            sk_ctl user ssh-key add "$user" --key-file "$SK/$user.key.pub" >/dev/null
    }; then
        show "$SK/ctl.err"
        return 1
    fi
    LOGIN[$cfg]=$user+$svc@127.0.0.1
    PORT[$cfg]=${BASTION##*:}
    printf '#!/bin/sh\nPYTHONPATH=%q exec python3 %q totp %q\n' "$BENCH_DIR" "$HELPER" "$SK/$user.totp" >"$SK/$user.askpass"
    chmod 700 "$SK/$user.askpass"
}

COMMON_SSH=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes
    -o ConnectTimeout=10 -o ServerAliveInterval=30)

# start_master CFG CIPHER KEY [ASKPASS]: one authenticated connection (ControlMaster) every scp of CFG
# goes over; then an `exec true` through it, so the bastion's own login to the target is made.
start_master() {
    local cfg=$1 c=$2 key=$3 askpass=${4:-} tag
    tag=${cfg//[^a-z0-9]/_}
    CM[$cfg]=$WORK/cm-$tag
    local -a copt=()
    [[ $c == default ]] || copt=(-c "$c")
    local -a env_=(env)
    if [[ -n $askpass ]]; then
        env_+=(SSH_ASKPASS="$askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=:0)
    fi
    local off=0
    off=$(stat -c %s "${SSHD_LOG[$c]}" 2>/dev/null || echo 0)
    spawn "$WORK/master-$tag.out" "$WORK/master-$tag.log" "${LOAD_PIN[@]}" "${env_[@]}" ssh -v -n -N "${COMMON_SSH[@]}" \
        -o PreferredAuthentications=publickey,keyboard-interactive -o ControlMaster=yes -o "ControlPath=${CM[$cfg]}" \
        -o "Port=${PORT[$cfg]}" -i "$key" "${copt[@]}" "${LOGIN[$cfg]}"
    MASTER_PID[$cfg]=$SPAWNED_PID
    wait_for "$WAIT_SECS" "ssh master of $cfg" "$SPAWNED_PID" ssh -F /dev/null -o "ControlPath=${CM[$cfg]}" -O check x ||
        {
            show "$WORK/master-$tag.log" "${SSHD_LOG[$c]}" "$SK/relay.err"
            return 1
        }
    local rc
    rc=$(py run 60 "$WORK/warmup-$tag.log" "${LOAD_PIN[@]}" ssh "${COMMON_SSH[@]}" -o ControlMaster=no \
        -o "ControlPath=${CM[$cfg]}" -o "Port=${PORT[$cfg]}" "${LOGIN[$cfg]}" true | cut -d' ' -f1)
    if [[ $rc != 0 ]]; then
        show "$WORK/warmup-$tag.log" "$SK/relay.err"
        return 1
    fi
    local hop1 hop2
    hop1=$(py kex "$WORK/master-$tag.log" client-\>server) || hop1="?"
    hop2=$(py kex "${SSHD_LOG[$c]}" client-\>server "$off") || hop2="?"
    if [[ ${cfg#*|} == direct ]]; then
        meta "cipher $cfg" "$hop1"
    else
        meta "cipher $cfg" "$hop1 / $hop2"
    fi
    log "$cfg: master pid ${MASTER_PID[$cfg]}; client hop $hop1, sshd saw $hop2"
}

i=0
for c in "${CIPHERS[@]}"; do
    for p in "${PATHS[@]}"; do
        cfg="$c|$p"
        if [[ $p == direct ]]; then
            LOGIN[$cfg]=$ME@127.0.0.1
            PORT[$cfg]=${SSHD_PORT[$c]}
            start_master "$cfg" "$c" "$WORK/direct_key" || {
                SKIP[$cfg]="setup failed: no authenticated ssh connection (see the log)"
                BENCH_KEEP=1
            }
        else
            if ! setup_bastion_target "$c" "$p" "$cfg" "$i"; then
                SKIP[$cfg]="setup failed: ctl (see the log)"
                BENCH_KEEP=1
            elif ! start_master "$cfg" "$c" "$SK/u$i$p.key" "$SK/u$i$p.askpass"; then
                SKIP[$cfg]="setup failed: no connection through the bastion with cipher $c (see the log)"
                BENCH_KEEP=1
            fi
        fi
        [[ -n ${SKIP[$cfg]:-} ]] && {
            log "$cfg: ${SKIP[$cfg]}"
            note "$cfg" "${SKIP[$cfg]}"
        }
        i=$((i + 1))
    done
done

# ---------------------------------------------------------------- measurements

REMOTE_DIR=$WORK/remote
mkdir -p "$REMOTE_DIR"

# transfer CFG PROTO DIR RUN [PERF]: one scp of the file; records MiB/s and CPU seconds when the copy is right.
transfer() {
    local cfg=$1 proto=$2 dir=$3 r=$4 perf=${5:-} c=${1%%|*} tag src dst check res rc wall ccpu
    tag=${cfg//[^a-z0-9]/_}
    local -a popt=()
    [[ $proto == legacy ]] && popt=(-O)
    if [[ $dir == up ]]; then
        src=$SRC
        dst=${LOGIN[$cfg]}:$REMOTE_DIR/up-$tag.bin
        check=$REMOTE_DIR/up-$tag.bin
    else
        src=${LOGIN[$cfg]}:$SRC
        dst=$WORK/down-$tag.bin
        check=$dst
    fi
    rm -f "$check"
    local pids=("$RELAY_PID" "$AGENT_PID" "${SSHD_PID[$c]}" "${MASTER_PID[$cfg]}")
    local rel0 rel1 ag0 ag1 sd0 sd1 ms0 ms1 perfpid=""
    if [[ -n $perf ]]; then
        local -a targets=("$RELAY_PID")
        [[ ${cfg#*|} == agent ]] && targets+=("$AGENT_PID")
        perf record -q -F 499 -o "$perf" -p "$(
            IFS=,
            echo "${targets[*]}"
        )" >"$perf.log" 2>&1 &
        perfpid=$!
        remember_pid "$perfpid"
        sleep 1
    fi
    rel0=$(cpu_ticks "${pids[0]}")
    ag0=$(cpu_ticks "${pids[1]}")
    sd0=$(cpu_ticks "${pids[2]}")
    ms0=$(cpu_ticks "${pids[3]}")
    res=$(py run "$XFER_TIMEOUT" "$WORK/scp-$tag.log" "${LOAD_PIN[@]}" scp -q "${COMMON_SSH[@]}" -o ControlMaster=no \
        -o "ControlPath=${CM[$cfg]}" -o "Port=${PORT[$cfg]}" "${popt[@]}" "$src" "$dst")
    rel1=$(cpu_ticks "${pids[0]}")
    ag1=$(cpu_ticks "${pids[1]}")
    sd1=$(cpu_ticks "${pids[2]}")
    ms1=$(cpu_ticks "${pids[3]}")
    if [[ -n $perfpid ]]; then
        kill -INT "$perfpid" 2>/dev/null || true
        wait "$perfpid" 2>/dev/null || true
    fi
    read -r rc wall ccpu <<<"$res"
    local k=${proto}_$dir
    if [[ $rc != 0 ]]; then
        log "$cfg: $k run $r FAILED (exit $rc after ${wall}s): $(tail -n 2 "$WORK/scp-$tag.log" | tr '\n' ' ')"
        note "$cfg" "$k run $r failed: scp exit $rc"
        return 0
    fi
    local sha
    sha=$(py sha256 "$check" 2>/dev/null || echo missing)
    rm -f "$check"
    if [[ $sha != "$SRC_SHA" ]]; then
        log "$cfg: $k run $r: WRONG COPY (sha256 $sha, expected $SRC_SHA)"
        note "$cfg" "$k run $r: copy differs from the original (not counted)"
        return 0
    fi
    [[ ${cfg#*|} == direct ]] || BASTION_OK=$((BASTION_OK + 1))
    [[ -n $perf ]] && return 0 # profiled runs are not counted
    local mibs
    mibs=$(python3 -c "print(f'{$BENCH_MB / $wall:.2f}')")
    record "$cfg" "${k}_mibs" "$r" "$mibs"
    record "$cfg" "${k}_relay_cpu" "$r" "$(secs "$rel0" "$rel1")"
    record "$cfg" "${k}_agent_cpu" "$r" "$(secs "$ag0" "$ag1")"
    record "$cfg" "${k}_sshd_cpu" "$r" "$(secs "$sd0" "$sd1")"
    record "$cfg" "${k}_client_cpu" "$r" "$(python3 -c "print(f'{$ccpu + ($ms1 - $ms0) / $CLK_TCK:.3f}')")"
    log "$cfg: $k run $r: $mibs MiB/s (${wall}s), relay $(secs "$rel0" "$rel1") s, agent $(secs "$ag0" "$ag1") s, sshd $(secs "$sd0" "$sd1") s, client $ccpu s + master $(secs "$ms0" "$ms1") s"
}

BASTION_OK=0 # bastion transfers whose copy was right; each must be in the recordings with its SHA-256

runnable() { [[ -z ${SKIP[$1]:-} ]] && alive "${MASTER_PID[$1]}" "${PID_START[${MASTER_PID[$1]}]:-0}"; }

# Interleaved: each run goes through every configuration, so drift hits all of them alike.
for r in $(seq 1 "$BENCH_RUNS"); do
    for c in "${CIPHERS[@]}"; do
        for proto in "${PROTOS[@]}"; do
            for dir in up down; do
                for p in "${PATHS[@]}"; do
                    cfg="$c|$p"
                    if [[ -n ${SKIP[$cfg]:-} ]]; then continue; fi
                    if ! runnable "$cfg"; then
                        SKIP[$cfg]="its ssh master connection ended during the run"
                        note "$cfg" "${SKIP[$cfg]}"
                        log "$cfg: ${SKIP[$cfg]}"
                        continue
                    fi
                    transfer "$cfg" "$proto" "$dir" "$r"
                done
            done
        done
    done
done

for pid in "$RELAY_PID" "$AGENT_PID"; do
    if [[ -n $pid ]] && ! alive "$pid" "${PID_START[$pid]:-0}"; then note all "process $pid (relay or agent) exited during the run"; fi
done
if [[ -n $RELAY_PID ]]; then
    rss=$(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$RELAY_PID/status" 2>/dev/null || true)
    [[ -n $rss ]] && meta "relay peak RSS" "$rss"
fi
if [[ -n $AGENT_PID ]]; then
    rss=$(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$AGENT_PID/status" 2>/dev/null || true)
    [[ -n $rss ]] && meta "agent peak RSS" "$rss"
fi
# The bastion's evidence: every transfer it carried is a recorded file operation with the file's SHA-256
# (a tracker that gave up would also mean the relay did less work than in real use).
if [[ -n $RELAY_PID ]] && ((BASTION_OK > 0)); then
    if ev=$(sk_ctl --json recording list --limit 1000 | py evidence "$SRC_SHA"); then
        read -r ev_ok ev_bad <<<"$ev"
        meta "bastion evidence" "$ev_ok of $BASTION_OK transfers recorded with the file's SHA-256"
        if [[ $ev_ok != "$BASTION_OK" ]]; then
            note all "only $ev_ok of $BASTION_OK bastion transfers are recorded with the file's SHA-256; $ev_bad"
            log "WARNING: only $ev_ok of $BASTION_OK bastion transfers recorded with their SHA-256 ($ev_bad)"
        fi
    else
        note all "could not read the bastion's recordings"
    fi
fi
errs=$(grep -ciE 'error|panic' "$SK/relay.err" 2>/dev/null || true)
[[ ${errs:-0} -gt 0 ]] && note all "relay stderr has $errs error/panic lines: $(grep -iE 'error|panic' "$SK/relay.err" | head -n 2 | cut -c1-200 | tr '\n' ' ')"

stamp=$(date -u +%Y%m%d-%H%M%S)
if [[ $BENCH_PERF == 1 ]]; then
    for c in "${CIPHERS[@]}"; do
        for proto in "${PROTOS[@]}"; do
            for dir in up down; do
                for p in "${PATHS[@]}"; do
                    cfg="$c|$p"
                    if [[ $p == direct ]] || ! runnable "$cfg"; then continue; fi
                    tag=${cfg//[^a-z0-9]/_}
                    data=$WORK/perf-$tag-$proto-$dir.data
                    log "$cfg: profiling one $proto $dir transfer (not counted)"
                    transfer "$cfg" "$proto" "$dir" perf "$data"
                    out=$RESULTS_DIR/bastion-perf-$stamp-$tag-$proto-$dir.txt
                    {
                        echo "# perf record -F 499 -p relay${AGENT_PID:+,agent}: $cfg, $proto $dir, $BENCH_MB MiB (one transfer, not counted)"
                        for who in relay agent; do
                            pid=$RELAY_PID
                            if [[ $who == agent ]]; then
                                [[ $p == agent ]] || continue
                                pid=$AGENT_PID
                            fi
                            echo
                            echo "## $who (pid $pid); percentages are of this process's samples"
                            perf report -i "$data" --pid "$pid" --percentage relative --stdio --no-children --sort dso,symbol --percent-limit 0.7 \
                                -g none 2>/dev/null | grep -v '^$' | grep -v '^# \(To display\|Total Lost\|Event count\|\.\.\.\)' |
                                grep -v '^#$' | head -n 40
                        done
                    } >"$out" || true
                    log "profile: $out"
                done
            done
        done
    done
fi

echo
py table "$RAW" "$NOTES" "$META" "$BENCH_CIPHERS" "$BENCH_PATHS" "$BENCH_PROTOS" "$BENCH_MB" "$RESULTS_DIR/bastion-$stamp.md"
cp "$RESULTS_DIR/bastion-$stamp.md" "$RESULTS_DIR/bastion-latest.md"
cp "$RAW" "$RESULTS_DIR/bastion-$stamp.raw.tsv"
log "table written to $RESULTS_DIR/bastion-latest.md (and bastion-$stamp.md; raw per-run values: bastion-$stamp.raw.tsv)"
