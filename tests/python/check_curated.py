#!/usr/bin/env python3
"""Open a cotforge run directory the way notebook users do and check what they get.

    python tests/python/check_curated.py RUN_DIR

Checks, with pyarrow, pandas and Hugging Face `datasets`:
  - curated/ reads as one table whose row count matches stats.json;
  - `images` is list<struct{bytes: binary, path: string}> (the datasets Image layout), and
    casting it to List(Image()) decodes every image to the size cotforge measured;
  - ledger/ reads in pandas and its rows plus the curated rows equal the rows ingested;
  - every Parquet file of the run (curated, ledger, stats tables, shards) opens in pandas,
    polars and `datasets.load_dataset("parquet")` with the same row counts, and
    load_dataset decodes curated and shard images to PIL images with no cast (the files carry
    the datasets features);
  - shards/ (specs ending in `pack`): every file's sha256 is the manifest's; pandas reads the
    packs; segment lengths sum to the pack's tokens, within max_length; the loss mask counts
    match; each pack's images decode with PIL and their grids account for its pad tokens; the
    sample ids are exactly the curated ids, each once.
Prints 'python: N passed, M failed' and exits non-zero on any failure.
"""
import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from checklib import run_checks


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

    stats_tables = sorted(glob.glob(os.path.join(run_dir, "stats", "*.parquet")))
    shard_files = sorted(glob.glob(os.path.join(run_dir, "shards", "*.parquet")))

    @check
    def every_parquet_opens_in_pandas_polars_and_datasets():
        import datasets
        import pandas as pd
        import polars as pl

        groups = {"curated": curated, "ledger": ledger, "stats": stats_tables, "shards": shard_files}
        assert [os.path.basename(p) for p in stats_tables] == ["drops.parquet", "histograms.parquet", "stages.parquet"], stats_tables
        for name, files in groups.items():
            if not files:
                continue
            n_pd = sum(len(pd.read_parquet(p)) for p in files)
            n_pl = pl.concat([pl.read_parquet(p) for p in files], how="vertical_relaxed").height if name != "stats" else sum(pl.read_parquet(p).height for p in files)
            assert n_pd == n_pl, (name, n_pd, n_pl)
            if name == "stats":
                for p in files:
                    ds = datasets.load_dataset("parquet", data_files=p, split="train")
                    assert len(ds) == len(pd.read_parquet(p)), p
            else:
                ds = datasets.load_dataset("parquet", data_files=files, split="train")
                assert len(ds) == n_pd, (name, len(ds), n_pd)
        assert pl.read_parquet(stats_tables[2])["rows_out"].to_list() == [s["rows_out"] for s in stats["stages"]]
        assert pl.read_parquet(stats_tables[0])["rows"].sum() == stats["ledger_rows"]

    @check
    def load_dataset_gives_images_as_pil_without_a_cast():
        import datasets
        from PIL import Image

        ds = datasets.load_dataset("parquet", data_files=curated, split="train")
        assert isinstance(ds.features["images"].feature, datasets.Image), ds.features["images"]
        row = next(r for r in ds if r["images"])
        assert isinstance(row["images"][0], Image.Image)
        assert row["images"][0].size == (row["image_widths"][0], row["image_heights"][0])
        if shard_files:
            sh = datasets.load_dataset("parquet", data_files=shard_files, split="train")
            assert isinstance(sh.features["images"].feature, datasets.Image), sh.features["images"]
            pack = next(r for r in sh if r["images"])
            assert isinstance(pack["images"][0], Image.Image)
            assert len(pack["images"]) == len(pack["image_grid_thw"])

    shard_dir = os.path.join(run_dir, "shards")
    if os.path.isdir(shard_dir):

        @check
        def pandas_reads_the_shards_and_they_match_the_manifest():
            import hashlib
            import io

            import pandas as pd
            from PIL import Image

            manifest = json.load(open(os.path.join(shard_dir, "manifest.json")))
            frames = []
            for f in manifest["files"]:
                path = os.path.join(shard_dir, f["path"])
                assert hashlib.sha256(open(path, "rb").read()).hexdigest() == f["sha256"], f["path"]
                assert pq.ParquetFile(path).metadata.num_row_groups == f["row_groups"]
                frames.append(pd.read_parquet(path))
            packs = pd.concat(frames, ignore_index=True)
            assert len(packs) == manifest["packs"]
            assert list(packs["pack_index"]) == list(range(len(packs)))
            pad = json.load(open(os.path.join(manifest["tokenizer"], "tokenizer.json")))
            pad_id = next(t["id"] for t in pad["added_tokens"] if t["content"] == manifest["image_token"])
            samples = []
            for row in packs.itertuples():
                assert len(row.input_ids) == row.num_tokens == sum(row.segment_lengths) <= manifest["max_length"]
                assert len(row.loss_mask) == row.num_tokens and int(row.loss_mask.sum()) == row.num_loss_tokens
                assert len(row.images) == len(row.image_grid_thw)
                for img, grid in zip(row.images, row.image_grid_thw):
                    Image.open(io.BytesIO(img["bytes"])).load()
                assert sum(int(g[0] * g[1] * g[2]) // 4 for g in row.image_grid_thw) == int((row.input_ids == pad_id).sum())
                samples.extend(row.sample_ids)
            assert packs["num_tokens"].sum() == manifest["tokens"]
            assert len(samples) == len(set(samples)) == manifest["samples"]
            cur = pd.concat([pd.read_parquet(p, columns=["id"]) for p in curated])
            assert set(samples) == set(cur["id"])

    return run_checks(checks, "python")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
