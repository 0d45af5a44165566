"""Count a run's ledger rows by the synth label of the row (used by benches/run.sh).

    python3 benches/ledger_by_label.py CORPUS_DIR RUN_DIR [STAGE]

CORPUS_DIR holds labels.parquet from `cotforge synth`; rows without a label are `clean`.
Needs pyarrow (the CI venv has it).
"""
import collections
import glob
import sys

import pyarrow.parquet as pq

corpus, run = sys.argv[1], sys.argv[2]
stage = sys.argv[3] if len(sys.argv) > 3 else None
labels = {r["row"]: r["defects"][0] for r in pq.read_table(f"{corpus}/labels.parquet").to_pylist()}
counts = collections.Counter()
for f in sorted(glob.glob(f"{run}/ledger/*.parquet")):
    for r in pq.read_table(f, columns=["stage", "origin", "reason"]).to_pylist():
        if stage and r["stage"] != stage:
            continue
        row = int(r["origin"].rsplit("#", 1)[1])
        counts[(r["stage"], r["reason"], labels.get(row, "clean"))] += 1
for (st, reason, label), n in sorted(counts.items()):
    print(f"  {st:16} {reason:18} {label:16} {n:7}")
