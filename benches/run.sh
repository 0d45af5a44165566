#!/usr/bin/env bash
# Reproduce the numbers in BENCHMARKS.md (release build, run from the repository root).
#   bash benches/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/cotforge-target}"
cargo build --release --quiet
B="$CARGO_TARGET_DIR/release/cotforge"
PY="${PY:-/var/cache/cotforge-venv/bin/python}"   # needs pyarrow (.ci/run makes this venv)
echo "## machine: $(nproc) cores, $(uname -m)"
echo "## demo run"
"$B" run pipelines/demo.yaml --out out/bench-demo --quiet | tail -2
echo "## synth 100k rows"
rm -rf out/bench100k
"$B" synth --rows 100000 --seed 1 --bench-items 5000 --out out/bench100k --quiet | tail -1
du -sh out/bench100k/data
echo "## curate the 100k corpus"
"$B" run benches/synth100k.yaml --quiet | tail -6
echo "## text filters on the 100k corpus (fused segment)"
"$B" run benches/text100k.yaml --quiet | tail -5
python3 benches/stage_times.py out/text100k-run/stats.json
echo "## token bounds on the 100k corpus (filter.length with the bundled Qwen2.5 tokenizer)"
"$B" run benches/tokens100k.yaml --quiet | tail -4
python3 benches/stage_times.py out/tokens100k-run/stats.json
"$B" bench-tokens out/bench100k/data/train-00000.parquet --rows 5000
echo "## tokenize and pack the 100k corpus"
"$B" run benches/pack100k.yaml --quiet | tail -6
"$B" bench-tokenize out/pack100k-run
echo "## verifier: the oracle cases repeated 260 times (100,620 cases)"
python3 - <<'PY'
import json
cases = [json.loads(l) for l in open("tests/data/verify/cases.jsonl")]
with open("out/cases_big.jsonl", "w") as f:
    for k in range(260):
        for c in cases:
            f.write(json.dumps({"id": f"{k}-{c['id']}", "gold": c["gold"], "prediction": c["prediction"]}) + "\n")
PY
"$B" verify out/cases_big.jsonl > /dev/null
echo "## MinHash near-duplicates of 1M prompts"
rm -rf out/prompts1m
"$B" synth --layout prompts --rows 1000000 --seed 1 --out out/prompts1m --quiet | tail -1
"$B" run benches/minhash1m.yaml --quiet | tail -5
echo "## image dedup of the 100k corpus"
"$B" run benches/image100k.yaml --quiet | tail -5
python3 benches/stage_times.py out/image100k-run/stats.json | tail -1
"$PY" benches/ledger_by_label.py out/bench100k out/image100k-run
echo "## decontamination of the 100k corpus against 5,000 benchmark questions"
"$B" run benches/decontam100k.yaml --quiet | tail -7
python3 benches/stage_times.py out/decontam100k-run/stats.json | tail -1
"$PY" benches/ledger_by_label.py out/bench100k out/decontam100k-run decontaminate
echo "## near-duplicates of the 100k corpus: image-aware (default) and text-only"
for mode in match ignore; do
  sed -e "s/name: bench100k/name: nd-$mode/" -e "s#out/bench100k-run#out/nd-$mode-run#" \
      -e "s/  - validate: {}/  - dedup.minhash: {images: $mode}/" -e "/filter.length\|dedup.exact/d" \
      benches/synth100k.yaml > out/nd-$mode.yaml
  "$B" run out/nd-$mode.yaml --quiet | tail -3
  "$PY" benches/ledger_by_label.py out/bench100k out/nd-$mode-run
done
echo "## best-fit-decreasing packing of 1M log-normal long-CoT lengths"
"$B" bench-pack
