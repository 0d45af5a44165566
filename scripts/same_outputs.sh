#!/usr/bin/env bash
# Do two cotforge binaries write the same bytes? For refactors that must not change outputs.
#
#   scripts/same_outputs.sh OLD_BIN NEW_BIN [WORK_DIR]
#
# Runs the same commands with each binary, in the same directory (paths end up in the
# outputs): the demo run, a synthetic corpus, the arithmetic task curated in one process and
# as a split run of two tasks, a fresh model trained two SFT steps, the shard inspection, a
# Slurm plan and a ShareGPT export. Then it compares every output file: the ones that hold
# only wall times and process ids (stats.json, _DONE.json, fingerprint log names) are left
# out, JSON and JSONL files are compared as values without their timing keys (`*_per_s`,
# `seconds`), all others byte for byte. Exits 1 and lists the files that differ.
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); work=${3:-$(mktemp -d)}
repo=$(cd "$(dirname "$0")/.." && pwd)
run_all() {
  local bin=$1 out=$2
  rm -rf "$out"; mkdir -p "$out"; cd "$repo"
  "$bin" run pipelines/demo.yaml --out "$out/demo" --quiet --no-report >/dev/null
  "$bin" synth --rows 300 --seed 3 --out "$out/synth" --quiet >/dev/null
  "$bin" synth --task arith --rows 48 --test-rows 8 --out "$out/arith" >/dev/null
  sed "s#out/arith/train.parquet#$out/arith/train.parquet#" pipelines/arith.yaml > "$out/arith.yaml"
  "$bin" run "$out/arith.yaml" --out "$out/arith-run" --quiet --no-report >/dev/null
  "$bin" run "$out/arith.yaml" --out "$out/arith-split" --quiet --no-report --world-size 2 --rank 0 >/dev/null &
  "$bin" run "$out/arith.yaml" --out "$out/arith-split" --quiet --no-report --world-size 2 --rank 1 >/dev/null
  wait
  "$bin" init-model --config qwen2.5-vl-tiny --tokenizer fixtures/tokenizers/qwen2.5 --out "$out/model" --seed 1 >/dev/null
  "$bin" train sft --shards "$out/arith-run/shards" --model "$out/model" --out "$out/sft" --config pipelines/sft-demo.yaml --quiet >/dev/null
  "$bin" inspect "$out/arith-run/shards" --rows 2 > "$out/inspect.txt"
  "$bin" plan "$out/arith.yaml" --world-size 3 --slurm --out /data/run > "$out/plan.txt"
  "$bin" export "$out/demo" --layout sharegpt --format jsonl --out "$out/export" >/dev/null
}
rm -rf "$work/old" "$work/new"
run_all "$old" "$work/run"; mv "$work/run" "$work/old"
run_all "$new" "$work/run"; mv "$work/run" "$work/new"
python3 - "$work/old" "$work/new" <<'PY'
import json, os, sys
old, new = sys.argv[1], sys.argv[2]
def files(root):
    out = set()
    for d, _, fs in os.walk(root):
        for f in fs:
            rel = os.path.relpath(os.path.join(d, f), root)
            if f in ("stats.json", "_DONE.json") or "/fingerprints/" in "/" + rel:
                continue
            out.add(rel)
    return out
a, b = files(old), files(new)
bad = sorted(a ^ b)
for rel in sorted(a & b):
    x, y = open(os.path.join(old, rel), "rb").read(), open(os.path.join(new, rel), "rb").read()
    if x == y:
        continue
    def timeless(v):
        if isinstance(v, dict):
            return {k: timeless(w) for k, w in v.items() if not (k.endswith("_per_s") or k == "seconds")}
        return [timeless(w) for w in v] if isinstance(v, list) else v
    try:
        if rel.endswith(".json") and timeless(json.loads(x)) == timeless(json.loads(y)):
            continue
        if rel.endswith(".jsonl"):
            lx, ly = x.decode().splitlines(), y.decode().splitlines()
            if len(lx) == len(ly) and all(timeless(json.loads(p)) == timeless(json.loads(q)) for p, q in zip(lx, ly)):
                continue
    except ValueError:
        pass
    bad.append(rel)
print(f"{len(a & b)} files compared, {len(bad)} differ")
for rel in bad:
    print("  differs:", rel)
sys.exit(1 if bad else 0)
PY
