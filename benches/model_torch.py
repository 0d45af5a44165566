"""The `cotforge bench-model --config small` workload in PyTorch + transformers on CPU, for
comparison: the same Qwen2 config (8 layers, hidden 512, GQA 8/2, vocab 32,000), random
weights, forward over 4 sequences of 256 tokens (the packed row's segments as a batch) and
generation of 32 tokens after a 64-token prompt, 1 sequence and 8 samples.

    /var/cache/cotforge-torch/venv/bin/python benches/model_torch.py [--bf16]
"""
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

torch.manual_seed(1)
dtype = torch.bfloat16 if "--bf16" in sys.argv else torch.float32
cfg = Qwen2Config(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=2, rope_theta=1e6, tie_word_embeddings=True)
model = Qwen2ForCausalLM(cfg).to(dtype).eval()
params = sum(p.numel() for p in model.parameters())
ids = (torch.arange(1024) * 7919 % 32000).reshape(4, 256)
with torch.no_grad():
    best = float("inf")
    for _ in range(4):
        t = time.perf_counter()
        model(input_ids=ids).logits.sum().item()
        best = min(best, time.perf_counter() - t)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {params} parameters, {dtype}")
    print(f"forward: 4 x 256 tokens in {best:.3f} s: {1024 / best:.0f} tokens/s")
    prompt = ids.reshape(-1)[:64].unsqueeze(0)
    for n in (1, 8):
        t = time.perf_counter()
        out = model.generate(prompt.repeat(n, 1), max_new_tokens=32, min_new_tokens=32, do_sample=True,
                             temperature=1.0, top_k=0, top_p=1.0, pad_token_id=0)
        secs = time.perf_counter() - t
        made = (out.shape[1] - 64) * n
        print(f"generation, {n} sequence(s): {made} tokens in {secs:.3f} s: {made / secs:.1f} tokens/s")
