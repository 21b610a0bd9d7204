#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster for the tests and prints its URL; `stop DIR` ends it.
#   url=$(scripts/postgres.sh start /tmp/dir)   # listens only on a Unix socket inside DIR
#   scripts/postgres.sh stop /tmp/dir
#   scripts/postgres.sh halt /tmp/dir; scripts/postgres.sh resume /tmp/dir   # an outage (tests)
# Runs the server as the `postgres` system user when started by root (initdb refuses root).
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "postgresql is not installed (apt-get install postgresql)" >&2; exit 1; }
as=()
if [ "$(id -u)" -eq 0 ]; then as=(runuser -u postgres --); fi
# Commits are acknowledged before their WAL is written (fast), unless SEKISHO_PG_DURABLE=1: a test
# that kills the server (`halt`, pg_ctl -m immediate) must not lose what was committed.
sync=off; [ "${SEKISHO_PG_DURABLE:-0}" = 1 ] && sync=on
case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "${#as[@]}" -eq 0 ] || chown postgres: "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s start \
      -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=$sync -c max_connections=200"
    echo "postgres://postgres@localhost:5432?host=$dir"
    ;;
  stop)
    [ -d "$dir/data" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -s stop || true
    rm -rf "$dir"
    ;;
  halt)
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -s stop
    ;;
  resume)
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s start \
      -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=$sync -c max_connections=200"
    ;;
  *) echo "usage: $0 start|stop|halt|resume DIR" >&2; exit 2 ;;
esac
