#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need, then runs the quality gates
# and the whole suite. Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the test suite drives for real. Each entry is "command:package".
needs=(
  "curl:curl"       # HTTP requests through tunnels, as a person would
  "kill:procps"     # freezing a relay with SIGSTOP in the heartbeat test
  "ssh:openssh-client"  # ssh, sftp and scp against the SSH bastion
  "age:age"         # opening exported evidence archives with the reference age tool
  "tmux:tmux"       # a real terminal (typing, window changes) for the Telnet bastion test
  "openssl:openssl" # the RSA key of the test's OpenID Connect provider
  "chromium:chromium"             # headless Chromium for the browser tests (web console, browser edge)
  "chromedriver:chromium-driver"  # and the WebDriver server that drives it
  "sqlite3:sqlite3"               # to alter an audit event behind the relay's back (tamper tests)
  "prometheus:prometheus"         # a real Prometheus scrapes the relay's /metrics
  "rsyslogd:rsyslog"              # the SIEM collector the audit export sends to (syslog over TLS)
  "age-keygen:age"                # backups encrypted to a recipient, opened by the reference tool
  "lintian:lintian"               # the Debian package is checked by Debian's own linter
)
missing=()
for pair in "${needs[@]}"; do
  type -P "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# The store's tests run on PostgreSQL too (a throw-away cluster, started below).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
# A real sshd is the bastion's target in the tests (started by them on a free port).
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
# And Debian's telnetd (inetutils), started by the Telnet bastion test for each connection.
[ -x /usr/sbin/telnetd ] || missing+=(inetutils-telnetd)
# rsyslog's TLS driver (gnutls), for the SIEM test.
compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null || missing+=(rsyslog-gnutls)
# Japanese glyphs for Chromium (the console's ja pages and their screenshots, not boxes).
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
# The Debian package is built in a test with cargo-deb (a kept tool, pinned).
type -P cargo-deb >/dev/null || cargo install cargo-deb --version 3.8.0 --locked

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The quickstart's build leaves jemalloc out (README): it must build that way too.
cargo clippy --locked -p sekisho --no-default-features -- -D warnings
# A throw-away PostgreSQL cluster (Unix socket only) unless one is given in SEKISHO_TEST_PG.
if [ -z "${SEKISHO_TEST_PG:-}" ]; then
  pgdir=$(mktemp -d /tmp/sekisho-pg.XXXXXX)
  trap 'scripts/postgres.sh stop "$pgdir"' EXIT
  SEKISHO_TEST_PG=$(scripts/postgres.sh start "$pgdir")
  export SEKISHO_TEST_PG
fi
export SEKISHO_REQUIRE_PG=1

echo "== cargo test"
cargo test --workspace --locked
# Recursive input again with release optimisation: stack frames differ from the debug build's.
echo "== depth tests, optimised"
cargo test --profile depth --locked -p sekisho-policy -p sekisho-audit --test depth
