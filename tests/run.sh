#!/usr/bin/env bash
# The whole suite against one build directory:
#     tests/run.sh BUILD_DIR
# First every C unit test (BUILD_DIR/test/*_test), then the end-to-end
# tests with pytest. pytest's summary is the last line printed; non-zero
# exit when anything failed.
set -uo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$1
cd "$(dirname "$0")/.." || exit 2

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

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

SB_BUILD=$build /usr/bin/python3 -m pytest -q -p no:cacheprovider tests
rc=$?
[ $failed -eq 0 ] || exit 1
exit $rc
