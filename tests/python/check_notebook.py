#!/usr/bin/env python3
"""The README's "from a notebook" round trip, run for real.

    python tests/python/check_notebook.py COTFORGE_BIN

In a temporary directory: build a pandas DataFrame of traces with PIL images ({bytes, path}
structs, some paths None), write it with `to_parquet`, write a spec that maps its columns,
run `cotforge run`, and read the results back with pandas, polars and `datasets`; then
`cotforge export` the run as ShareGPT JSONL and as columns Parquet and open both with
`datasets.load_dataset`. Checks that the planted duplicate, wrong answer and truncated trace
are in the ledger with their reasons, that every other row comes back with its image bytes
intact, and that the exports hold the same traces.
Prints 'notebook: N passed, M failed' and exits non-zero on any failure.
"""
import io
import json
import os
import subprocess
import sys
import tempfile
from checklib import run_checks


def png(colour, size=(64, 48)):
    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", size, colour).save(b, format="PNG")
    return b.getvalue()


def main(binary):
    import datasets
    import pandas as pd
    import polars as pl
    from PIL import Image

    datasets.disable_progress_bars()
    work = tempfile.mkdtemp(prefix="cotforge-notebook-")
    cache = os.path.join(work, "hf-cache")
    ok = lambda a, b, c: f"<think>\nThe bars read {a} and {b}; {a} + {b} = {c}.\n</think>\nThe total is \\boxed{{{c}}}."
    colours = ["red", "green", "blue", "yellow", "purple"]
    rows = []
    for i, c in enumerate(colours):
        rows.append({
            "question": f"<image>\nWhat is the total of the {c} chart?",
            "trace": ok(i, 10, i + 10),
            "answer": str(i + 10),
            "images": [{"bytes": png(c), "path": None if i % 2 else f"{c}.png"}],
        })
    rows.append(dict(rows[0]))  # an exact duplicate of row 0
    rows.append({**rows[1], "question": "<image>\nAnd this one?", "answer": "99"})  # wrong answer
    rows.append({**rows[2], "question": "<image>\nAnd that one?", "trace": "<think>\nThe bars read 2 and"})  # truncated
    df = pd.DataFrame(rows)
    df.to_parquet(os.path.join(work, "mine.parquet"))
    spec = os.path.join(work, "mine.yaml")
    with open(spec, "w") as f:
        f.write(
            "name: mine\n"
            "inputs:\n"
            "  - path: mine.parquet\n"
            "    format: parquet\n"
            "    layout: columns\n"
            "    columns: {prompt: question, response: trace, reference: answer, images: images}\n"
            "    source: notebook\n"
            "stages:\n"
            "  - validate: {}\n"
            "  - filter.truncated: {}\n"
            "  - filter.correct: {}\n"
            "  - dedup.exact: {on: [prompt, images]}\n"
            "output:\n"
            "  dir: out/mine\n"
        )
    r = subprocess.run([binary, "run", "mine.yaml", "-q"], cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = os.path.join(work, "out", "mine")
    checks = []

    def check(fn):
        checks.append(fn)
        return fn

    @check
    def results_read_back_in_pandas_with_every_drop_explained():
        cur = pd.read_parquet(os.path.join(run, "curated"))
        led = pd.read_parquet(os.path.join(run, "ledger"))
        assert len(cur) == 5 and len(led) == 3, (len(cur), len(led))
        assert sorted(led["reason"]) == ["duplicate", "unclosed_reasoning", "wrong_answer"], list(led["reason"])
        assert sorted(cur["reference"]) == sorted(r["answer"] for r in rows[:5])
        by_ref = {r["answer"]: r for r in rows[:5]}
        for _, row in cur.iterrows():
            orig = by_ref[row["reference"]]
            assert row["prompt"] == orig["question"] and row["response"] == orig["trace"]
            assert row["images"][0]["bytes"] == orig["images"][0]["bytes"]
        assert os.path.exists(os.path.join(run, "report.html"))

    @check
    def results_read_back_in_polars_and_datasets():
        cur = pl.read_parquet(os.path.join(run, "curated", "*.parquet"))
        assert cur.height == 5
        stages = pl.read_parquet(os.path.join(run, "stats", "stages.parquet"))
        assert stages["rows_dropped"].sum() == 3
        ds = datasets.load_dataset("parquet", data_files=os.path.join(run, "curated", "*.parquet"), split="train", cache_dir=cache)
        img = ds[0]["images"][0]
        assert isinstance(img, Image.Image) and img.size == (64, 48), img

    def export(layout, fmt):
        out = os.path.join(work, f"export-{layout}-{fmt}")
        r = subprocess.run([binary, "export", run, "--layout", layout, "--format", fmt, "--out", out], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return out

    @check
    def sharegpt_jsonl_export_opens_in_datasets_with_image_files():
        out = export("sharegpt", "jsonl")
        ds = datasets.load_dataset("json", data_files=os.path.join(out, "data.jsonl"), split="train", cache_dir=cache)
        assert len(ds) == 5
        want = {r["answer"]: r for r in rows[:5]}
        for row in ds:
            conv = row["conversations"]
            assert [t["from"] for t in conv] == ["human", "gpt"], conv
            orig = want[row["answer"]]
            assert conv[0]["value"] == orig["question"] and conv[1]["value"] == orig["trace"]
            assert len(row["images"]) == 1
            with open(os.path.join(out, row["images"][0]), "rb") as f:
                assert f.read() == orig["images"][0]["bytes"]
        summary = json.load(open(os.path.join(out, "_export.json")))
        assert summary["rows"] == 5 and summary["image_files"] == 5, summary

    @check
    def columns_parquet_export_decodes_images_in_datasets():
        out = export("columns", "parquet")
        ds = datasets.load_dataset("parquet", data_files=os.path.join(out, "data", "*.parquet"), split="train", cache_dir=cache)
        assert len(ds) == 5 and set(ds.column_names) >= {"prompt", "response", "reference", "images"}
        assert isinstance(ds.features["images"].feature, datasets.Image), ds.features
        for row in ds:
            assert isinstance(row["images"][0], Image.Image) and row["images"][0].size == (64, 48)
        back = pd.read_parquet(os.path.join(out, "data"))
        assert sorted(back["reference"]) == sorted(r["answer"] for r in rows[:5])

    @check
    def sharegpt_parquet_export_opens_in_pandas_polars_and_datasets():
        out = export("sharegpt", "parquet")
        data = os.path.join(out, "data")
        back = pd.read_parquet(data)
        assert len(back) == 5 and pl.read_parquet(os.path.join(data, "*.parquet")).height == 5
        ds = datasets.load_dataset("parquet", data_files=os.path.join(data, "*.parquet"), split="train", cache_dir=cache)
        assert len(ds) == 5
        for row in ds:
            assert [t["from"] for t in row["conversations"]] == ["human", "gpt"]
            assert all(os.path.exists(os.path.join(out, p)) for p in row["images"]), row["images"]

    return run_checks(checks, "notebook")


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1])))
