#!/usr/bin/env bash
# The whole suite against one build directory:
#     tests/run.sh BUILD_DIR
# First every C unit test (BUILD_DIR/test/*_test), with a throwaway
# PostgreSQL cluster (tests/pgcluster.sh) in SB_TEST_DATABASE_URL for the
# tests that check the PostgreSQL engine; then the end-to-end tests with
# pytest once per engine (SB_ENGINES, default "sqlite postgres"), each
# run's summary printed as it ends and both added up in the last line.
# Non-zero exit when anything failed.
set -uo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$1
cd "$(dirname "$0")/.." || exit 2

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Under /tmp, not pytest's private directory: the server runs as another
# user when we are root, and a socket path has ~100 bytes at most.
pgdir=$(mktemp -d /tmp/sb-pgunit.XXXXXX) || exit 2
cleanup() {
	tests/pgcluster.sh stop "$pgdir" >/dev/null 2>&1
	rm -rf "$pgdir"
}
trap cleanup EXIT
if tests/pgcluster.sh start "$pgdir"; then
	tests/pgcluster.sh createdb "$pgdir" sb_unit ||
		echo "createdb sb_unit failed" >&2
	export SB_TEST_DATABASE_URL="postgresql:///sb_unit?host=$pgdir"
else
	echo "no PostgreSQL cluster: the engine's unit checks are skipped" >&2
fi

passed=0 failed=0
for t in "$build"/test/*_test; do
	[ -x "$t" ] || continue
	out=$(mktemp)
	# Unit tests make their temp databases under TMPDIR; the 2-minute cap
	# turns a hang into a failure instead of a stuck run.
	if timeout 120 "$t" >"$out" 2>&1; then
		passed=$((passed + 1))
		status=ok
	else
		failed=$((failed + 1))
		status=FAIL
	fi
	last=$(grep -v '^[[:space:]]*$' "$out" | tail -n 1)
	printf '%-4s %s%s\n' "$status" "$(basename "$t")" "${last:+: $last}"
	[ $status = FAIL ] && sed 's/^/    /' "$out" | tail -n 40
	rm -f "$out"
done
echo "unit: $passed passed, $failed failed"
unset SB_TEST_DATABASE_URL
cleanup
trap - EXIT

rc=0 total_passed=0 total_failed=0
for engine in ${SB_ENGINES:-sqlite postgres}; do
	echo "== end-to-end tests on $engine"
	out=$(mktemp)
	start=$(date +%s)
	SB_DB_ENGINE=$engine SB_BUILD=$build /usr/bin/python3 -m pytest -q \
	    -p no:cacheprovider tests | tee "$out"
	r=${PIPESTATUS[0]}
	[ "$r" -eq 0 ] || rc=$r
	# pytest's last line: "N passed, M failed, K errors ... in T s".
	summary=$(grep -E '[0-9]+ (passed|failed|errors?)' "$out" | tail -n 1)
	p=$(echo "$summary" | awk '{ for (i = 2; i <= NF; i++)
		if ($i ~ /^passed/) n += $(i - 1) } END { print n + 0 }')
	f=$(echo "$summary" | awk '{ for (i = 2; i <= NF; i++)
		if ($i ~ /^(failed|errors?)/) n += $(i - 1) } END { print n + 0 }')
	total_passed=$((total_passed + ${p:-0}))
	total_failed=$((total_failed + ${f:-0}))
	echo "$engine: ${p:-0} passed, ${f:-0} failed in $(($(date +%s) - start)) s"
	rm -f "$out"
done
[ $failed -eq 0 ] || rc=1
total_passed=$((total_passed + passed))
total_failed=$((total_failed + failed))
echo "total: $total_passed passed, $total_failed failed"
exit $rc
