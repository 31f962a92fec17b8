#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the tests and print the URL to use.
#   eval "$(bash scripts/start_postgres.sh)"   # exports FRUGAL_TEST_POSTGRES_URL
# Needs Debian's postgresql package (server binaries under /usr/lib/postgresql/N/bin).
set -euo pipefail
PORT="${FRUGAL_PG_PORT:-54329}"
DATA="${FRUGAL_PG_DATA:-/tmp/frugal-pg-$PORT}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$BIN" ]; then
  echo "start_postgres.sh: no PostgreSQL server binaries (apt-get install postgresql)" >&2
  exit 1
fi
as_pg() {  # initdb and the server refuse to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U frugal -A trust --no-sync >/dev/null
  fi
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c fsync=off -c max_connections=200" \
    start >/dev/null
fi
"$BIN/psql" -h 127.0.0.1 -p "$PORT" -U frugal -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname='frugal_test'" | grep -q 1 ||
  "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U frugal frugal_test
echo "export FRUGAL_TEST_POSTGRES_URL=postgresql+psycopg://frugal@127.0.0.1:$PORT/frugal_test"
