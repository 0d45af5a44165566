"""Packing fill and tokens lost to over-length samples: cotforge's best-fit-decreasing over the
whole set, against TRL's `pack_dataset` (BFD) as its SFT path runs it, in `datasets.map`
windows of 1,000 rows, and over the whole set at once. Same lengths for both: they come from
`cotforge bench-pack --lengths-out`.

    python benches/trl_pack_compare.py [N] [COTFORGE_BINARY]

Installs TRL without its dependencies (its packing needs only datasets and pyarrow; no torch).
"""
import subprocess
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
BIN = sys.argv[2] if len(sys.argv) > 2 else "/var/cache/cotforge-target/release/cotforge"
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "trl==1.16.0"], check=True)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl.data_utils import pack_dataset  # noqa: E402

out = subprocess.run([BIN, "bench-pack", "--n", str(N), "--lengths-out", "out/pack_lengths.txt"], check=True, capture_output=True, text=True).stdout
lengths = np.loadtxt("out/pack_lengths.txt", dtype=np.int64)
total = int(lengths.sum())
print(f"{N} samples, {total} tokens (log-normal, median {int(np.median(lengths))}, p95 {int(np.percentile(lengths, 95))})")
print("cotforge (whole set, over-length samples dropped to the ledger):")
print("  " + out.strip().replace("\n", "\n  "))

offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
ids = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(np.zeros(total, dtype=np.int32)))
ds = Dataset(pa.table({"input_ids": ids}))
for cap in (8192, 16384):
    over = lengths[lengths > cap]
    for label, batch in (("windows of 1,000", 1000), ("whole set", len(lengths))):
        t = time.time()
        packed = pack_dataset(ds, cap, strategy="bfd", map_kwargs={"batch_size": batch})
        secs = time.time() - t
        seq = packed.data.column("seq_lengths").to_pylist()
        kept = sum(sum(s) for s in seq)
        fill = kept / (len(seq) * cap)
        print(f"TRL bfd, {label}, capacity {cap}: {len(seq)} packs, fill {100 * fill:.4f}%, "
              f"{total - kept} tokens truncated from {len(over)} over-length samples, {secs:.1f} s")
    print(f"ms-swift (drops over-length samples), capacity {cap}: {int(over.sum())} tokens in {len(over)} samples dropped")
