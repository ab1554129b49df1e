#!/usr/bin/env bash
# fuzz_campaign.sh: a libFuzzer campaign over the targets `make fuzz` builds, with figures.
#
#   scripts/fuzz_campaign.sh [-j JOBS] [-n EXECS] [-t SECONDS] [TARGET...]
#
# For each target (all of tests/fuzz/fuzz_*.c by default), JOBS processes (default: the CPUs)
# share one working corpus, $B/fuzz/corpus-NAME (seeded from tests/fuzz/corpus/NAME/), each
# running EXECS/JOBS inputs (EXECS default 10^7) or until SECONDS pass (default 600), whichever
# comes first. Crashes, leaks, timeouts and out-of-memory inputs land in $B/fuzz/artifacts-NAME/.
# Prints one table row per target (target, inputs run, seconds, inputs/s, crashes, corpus files)
# and writes the table to $B/fuzz/campaign.md. Needs the targets built: make fuzz FUZZ_SECONDS=0,
# or make $B/fuzz/fuzz_NAME.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
B=${B:-build}
JOBS=$(nproc)
EXECS=10000000
SECS=600
while getopts "j:n:t:" o; do
  case $o in
    j) JOBS=$OPTARG ;;
    n) EXECS=$OPTARG ;;
    t) SECS=$OPTARG ;;
    *) echo "usage: $0 [-j JOBS] [-n EXECS] [-t SECONDS] [TARGET...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && for f in tests/fuzz/fuzz_*.c; do n=${f#tests/fuzz/fuzz_}; targets+=("${n%.c}"); done

table="$B/fuzz/campaign.md"
mkdir -p "$B/fuzz"
{
  echo "| target | inputs run | seconds | inputs/s | crashes | corpus files (seed → end) |"
  echo "|---|---|---|---|---|---|"
} >"$table"
cat "$table"
status=0
for n in "${targets[@]}"; do
  bin=$B/fuzz/fuzz_$n
  if [ ! -x "$bin" ]; then echo "fuzz_campaign: $bin is not built (make $bin)" >&2; status=1; continue; fi
  corpus=$B/fuzz/corpus-$n art=$B/fuzz/artifacts-$n logs=$B/fuzz/logs-$n
  mkdir -p "$corpus" "$art" "$logs"
  rm -f "$logs"/*.log
  seed=$(find "tests/fuzz/corpus/$n" -type f | wc -l)
  dictarg=()
  [ -f "tests/fuzz/$n.dict" ] && dictarg=(-dict="tests/fuzz/$n.dict")
  t0=$(date +%s.%N)
  # -jobs runs JOBS separate processes, each to its own -runs; they share the corpus folder
  # (from the repository root, where the targets find their models; libFuzzer writes each job's
  # log to ./fuzz-JOB.log, moved to $logs afterwards)
  rm -f fuzz-[0-9]*.log
  "$bin" -jobs="$JOBS" -workers="$JOBS" -runs=$((EXECS / JOBS)) -max_total_time="$SECS" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 "${dictarg[@]}" -artifact_prefix="$art/" -print_final_stats=1 \
    "$corpus" "tests/fuzz/corpus/$n" >/dev/null 2>&1
  mv fuzz-[0-9]*.log "$logs"/ 2>/dev/null
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
  runs=$(cat "$logs"/fuzz-*.log 2>/dev/null | sed -n 's/^stat::number_of_executed_units: *//p' | awk '{s += $1} END {print s + 0}')
  crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  files=$(find "$corpus" -type f | wc -l)
  row=$(awk -v n="$n" -v r="$runs" -v s="$secs" -v c="$crashes" -v a="$seed" -v f="$files" \
    'BEGIN {printf "| %s | %d | %.0f | %.0f | %d | %d → %d |", n, r, s, r / s, c, a, f}')
  echo "$row" | tee -a "$table"
  [ "$crashes" -gt 0 ] && status=1
done
echo "table: $table"
exit $status
