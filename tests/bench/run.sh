#!/usr/bin/env bash
# Throughput and latency figures for a release build (make bench):
#     tests/bench/run.sh BUILD_DIR
# Starts a whole system on 127.0.0.1 through the test harness and prints a
# table; there is no pass/fail beyond the run completing.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$1
cd "$(dirname "$0")/../.." || exit 2

for p in "$build/bin/switchboard-relay" "$build/tests/bench/wsfan" \
    "$build/tests/bench/trivial" "$build/tests/bench/amiparse"; do
	if [ ! -x "$p" ]; then
		echo "bench: $p: not built (make bench)" >&2
		exit 2
	fi
done
command -v wrk >/dev/null || { echo "bench: wrk not installed (make deps)" >&2; exit 2; }

# 10,000 sockets: every process involved needs the room (nginx's own
# worker_rlimit_nofile covers its workers).
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Every figure on SQLite, then the database's own ones on PostgreSQL (a
# throwaway cluster, tests/pgcluster.sh), printed beside SQLite's.
figures=$(mktemp)
trap 'rm -f "$figures"' EXIT
SB_DB_ENGINE=sqlite /usr/bin/python3 tests/bench/bench.py --build "$build" \
    --figures-out "$figures"
SB_DB_ENGINE=postgres /usr/bin/python3 tests/bench/bench.py --build "$build" \
    --compare "$figures"
