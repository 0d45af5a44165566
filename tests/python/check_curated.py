#!/usr/bin/env python3
"""Open a cotforge run directory the way notebook users do and check what they get.

    python tests/python/check_curated.py RUN_DIR

Checks, with pyarrow, pandas and Hugging Face `datasets`:
  - curated/ reads as one table whose row count matches stats.json;
  - `images` is list<struct{bytes: binary, path: string}> (the datasets Image layout), and
    casting it to List(Image()) decodes every image to the size cotforge measured;
  - ledger/ reads in pandas and its rows plus the curated rows equal the rows ingested.
Prints 'python: N passed, M failed' and exits non-zero on any failure.
"""
import glob
import json
import os
import sys
import traceback

import pyarrow as pa
import pyarrow.parquet as pq


def main(run_dir):
    stats = json.load(open(os.path.join(run_dir, "stats.json")))
    curated = sorted(glob.glob(os.path.join(run_dir, "curated", "*.parquet")))
    ledger = sorted(glob.glob(os.path.join(run_dir, "ledger", "*.parquet")))
    checks = []

    def check(fn):
        checks.append(fn)
        return fn

    @check
    def pyarrow_schema_is_the_datasets_image_layout():
        table = pa.concat_tables([pq.read_table(p) for p in curated])
        assert table.num_rows == stats["rows_out"], (table.num_rows, stats["rows_out"])
        t = table.schema.field("images").type
        assert pa.types.is_list(t) or pa.types.is_large_list(t), t
        item = t.value_type
        assert pa.types.is_struct(item), item
        names = [item.field(i).name for i in range(item.num_fields)]
        assert names == ["bytes", "path"], names
        assert pa.types.is_binary(item.field("bytes").type) or pa.types.is_large_binary(item.field("bytes").type)
        assert pa.types.is_string(item.field("path").type) or pa.types.is_large_string(item.field("path").type)

    @check
    def pandas_reads_curated_and_ledger():
        import pandas as pd

        cur = pd.concat([pd.read_parquet(p) for p in curated])
        led = pd.concat([pd.read_parquet(p) for p in ledger]) if ledger else pd.DataFrame()
        assert len(cur) + len(led) == stats["rows_in"], (len(cur), len(led), stats["rows_in"])
        assert cur["id"].is_unique
        if len(led):
            assert set(led.columns) >= {"id", "source", "origin", "stage", "reason", "detail", "kept_id"}
            dups = led[led["reason"] == "duplicate"]
            assert dups["kept_id"].isin(cur["id"]).all()

    @check
    def datasets_decodes_every_image_at_the_measured_size():
        import datasets

        ds = datasets.Dataset.from_parquet(curated)
        ds = ds.cast_column("images", datasets.List(datasets.Image()))
        n = 0
        for row in ds:
            assert len(row["images"]) == len(row["image_ids"])
            for img, w, h in zip(row["images"], row["image_widths"], row["image_heights"]):
                assert img.size == (w, h), (img.size, w, h)
                img.load()
                n += 1
        assert n > 0, "no images decoded"

    passed = failed = 0
    for fn in checks:
        try:
            fn()
            passed += 1
            print(f"ok   {fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
    print(f"python: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
