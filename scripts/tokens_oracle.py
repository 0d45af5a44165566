#!/usr/bin/env python3
"""Reference image-token counts from transformers' own Qwen2-VL `smart_resize`.

Writes tests/data/tokens/smart_resize.jsonl: {height, width, min_pixels, max_pixels,
resized_height, resized_width, tokens} for a grid of image sizes. The function is taken from
the installed transformers source (the module itself imports torch, which is not needed for
this pure function), so the reference is transformers' code, not a re-implementation.

    /var/cache/cotforge-venv/bin/pip install transformers
    /var/cache/cotforge-venv/bin/python scripts/tokens_oracle.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_smart_resize import load  # noqa: E402

smart_resize = load()

sizes = [1, 13, 27, 28, 29, 41, 42, 43, 55, 56, 57, 64, 70, 84, 98, 100, 127, 140, 224, 250, 300,
         333, 448, 480, 500, 640, 720, 768, 960, 1000, 1024, 1080, 1280, 1920, 2048, 4000]
budgets = [(56 * 56, 28 * 28 * 1280), (256 * 28 * 28, 1280 * 28 * 28), (56 * 56, 28 * 28 * 256)]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tokens", "smart_resize.jsonl")
n = 0
with open(out, "w") as f:
    for lo, hi in budgets:
        for h in sizes:
            for w in sizes:
                if max(h, w) / min(h, w) > 200:
                    continue
                try:
                    rh, rw = smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi)
                except ValueError:
                    continue
                f.write(json.dumps({"height": h, "width": w, "min_pixels": lo, "max_pixels": hi,
                                    "resized_height": rh, "resized_width": rw, "tokens": rh * rw // 784}) + "\n")
                n += 1
print(f"wrote {n} cases to {out}")
