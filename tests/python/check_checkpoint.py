#!/usr/bin/env python3
"""A cotforge training checkpoint loads in Hugging Face `transformers` and gives the logits
cotforge gives.

    python tests/python/check_checkpoint.py CHECKPOINT_DIR COTFORGE_BINARY

For a vision-language checkpoint the input is text, one image (fixtures/models/image.png,
through transformers' Qwen2-VL image processor) and more text; for a text model, text alone.
cotforge's logits come from `cotforge logits` on the same ids and image. Prints
'python: N passed, M failed' and exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from PIL import Image
from safetensors.torch import load_file

import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.path.join(HERE, "..", "..", "fixtures", "models", "image.png")
MIN_PIXELS, MAX_PIXELS = 56 * 56, 28 * 28 * 64


def main(ckpt, binary):
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    vl = cfg["model_type"] in ("qwen2_vl", "qwen2_5_vl")
    tok = transformers.AutoTokenizer.from_pretrained(ckpt)
    text_a = tok("Compute the total shown in the picture.", add_special_tokens=False)["input_ids"]
    text_b = tok(" <think> The boxes read 3 and 4. </think> \\boxed{7}", add_special_tokens=False)["input_ids"]
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {name}: {detail}")

    kwargs = {}
    cli_images = []
    if vl:
        model, info = transformers.AutoModelForImageTextToText.from_pretrained(ckpt, dtype=torch.float32, output_loading_info=True)
        proc = transformers.Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
        px = proc(images=[Image.open(IMAGE).convert("RGB")], return_tensors="pt")
        n = int(px["image_grid_thw"].prod(-1).sum()) // 4
        ids = text_a + [cfg["vision_start_token_id"]] + [cfg["image_token_id"]] * n + [cfg["vision_end_token_id"]] + text_b
        ids_t = torch.tensor([ids])
        kwargs = dict(pixel_values=px["pixel_values"], image_grid_thw=px["image_grid_thw"],
                      mm_token_type_ids=(ids_t == cfg["image_token_id"]).to(torch.int32))
        cli_images = ["--image", IMAGE, "--min-pixels", str(MIN_PIXELS), "--max-pixels", str(MAX_PIXELS)]
    else:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32, output_loading_info=True)
        ids = text_a + text_b
        ids_t = torch.tensor([ids])
    model.eval()
    # every tensor of the checkpoint was used: nothing newly initialised, nothing left over
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        check(kind, not info.get(kind), f"{kind}: {sorted(info.get(kind))[:5]}")
    with torch.no_grad():
        want = model(input_ids=ids_t, **kwargs).logits[0].float()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.safetensors")
        subprocess.run([binary, "logits", "--model", ckpt, "--ids", ",".join(map(str, ids)), "--out", out] + cli_images,
                       check=True, stdout=subprocess.DEVNULL)
        got = load_file(out)["logits"]
    check("shape", tuple(got.shape) == tuple(want.shape), f"{tuple(got.shape)} vs {tuple(want.shape)}")
    if tuple(got.shape) == tuple(want.shape):
        d = float((got - want).abs().max())
        scale = float(want.abs().max())
        check("logits", d < 1e-4 * max(1.0, scale), f"max abs difference {d} (logit scale {scale})")
        check("argmax", bool((got.argmax(-1) == want.argmax(-1)).all()), "greedy tokens differ")
        print(f"checkpoint {os.path.basename(ckpt.rstrip('/'))} ({cfg['model_type']}, {len(ids)} tokens): "
              f"transformers {transformers.__version__} logits within {d:.2e} of cotforge's")
    print(f"python: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
