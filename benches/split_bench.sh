#!/usr/bin/env bash
# Split-run benchmark (BENCHMARKS.md): wall time of a spec run as one process, as one task
# and as N local tasks (`--world-size N`, all started at once), whether their curated output
# and ledger are byte-identical, and the size of the intermediate files (work/) next to the
# input.
#   benches/split_bench.sh COTFORGE_BIN SPEC INPUT_DIR OUT_DIR [N]
set -euo pipefail
bin=$1 spec=$2 input=$3 out=$4 n=${5:-2}
rm -rf "$out" && mkdir -p "$out"
calc() { awk "BEGIN { print $* }"; }
t() { local s=$(date +%s.%N); "$@" > /dev/null; calc "$(date +%s.%N) - $s"; }
one=$(t "$bin" run "$spec" --out "$out/one" -q --no-report)
single=$(t "$bin" run "$spec" --out "$out/split1" -q --no-report --world-size 1 --rank 0)
start=$(date +%s.%N)
for r in $(seq 0 $((n - 1))); do "$bin" run "$spec" --out "$out/split$n" -q --no-report --world-size "$n" --rank "$r" > /dev/null 2>&1 & done
wait
split=$(calc "$(date +%s.%N) - $start")
for d in split1 "split$n"; do
  for sub in curated ledger; do
    diff -r -q "$out/one/$sub" "$out/$d/$sub" > /dev/null && echo "$d/$sub: byte-identical to one process" || echo "$d/$sub: DIFFERS"
  done
done
in_b=$(du -sb "$input" | cut -f1)
printf 'input %s MB\n' "$((in_b / 1000000))"
for d in one split1 "split$n"; do
  w=$(du -sb "$out/$d/work" | cut -f1)
  printf '%-8s work/ %5s MB (%.2f x input)\n' "$d" "$((w / 1000000))" "$(calc "$w / $in_b")"
done
printf 'wall: one process %.1f s, 1 task %.1f s, %s tasks %.1f s\n' "$one" "$single" "$n" "$split"
