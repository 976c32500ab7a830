#!/usr/bin/env bash
# Run a libFuzzer target for a bounded time (make fuzz):
#     tests/fuzz/run.sh FUZZER SECONDS
# Seeds: the captured transcript's received bytes per section (up to 8 KB;
# inputs stay under 16 KB so the runs are many), each behind a first byte
# that picks the chunk size. Prints the fuzzer's
# final statistics and any crash file; fails when it found one.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 FUZZER SECONDS" >&2
	exit 2
fi
fuzzer=$1 secs=$2
cd "$(dirname "$0")/../.." || exit 2
dir=$(dirname "$fuzzer")
corpus=$dir/corpus
mkdir -p "$corpus" "$dir/crashes"
/usr/bin/python3 - "$corpus" <<'PY'
import sys
sys.path.insert(0, "tests")
import amitranscript
out = sys.argv[1]
seeds = [r for _, r in amitranscript.sections().values() if r]
for i, s in enumerate(seeds):
    for lead in (b"\x00", b"\x3f", b"\xc7"):
        with open(f"{out}/seed-{i:02d}-{lead[0]:02x}", "wb") as f:
            f.write(lead + s)
PY
log=$dir/fuzz.log
set +e
"$fuzzer" -max_total_time="$secs" -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$dir/crashes/" "$corpus" >"$log" 2>&1
rc=$?
set -e
grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|#[0-9]+ *DONE)' \
    "$log" || tail -n 20 "$log"
crashes=$(find "$dir/crashes" -type f | wc -l)
echo "fuzz: $secs s, exit $rc, $crashes crash file(s) in $dir/crashes"
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
