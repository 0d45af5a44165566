"""The `cotforge bench-sft` workload in PyTorch eager (transformers), for comparison: one SFT
step (forward, backward, AdamW) on one packed row of 2,048 tokens in 4 segments (a quarter
prompt, three quarters loss each), attention restricted to each segment by a block-diagonal
causal mask, positions restarting per segment, loss = mean cross-entropy over the loss tokens.

    /var/cache/cotforge-torch/venv/bin/python benches/sft_torch.py [qwen2-tiny|qwen2-small] [steps]

Prints tokens/s (best and mean of the timed steps after one warm-up) and the peak RSS.
"""
import resource
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

CONFIGS = {
    "qwen2-tiny": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2),
    "qwen2-small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2),
}
name = sys.argv[1] if len(sys.argv) > 1 else "qwen2-tiny"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
TOKENS, SEGMENTS = 2048, 4
torch.manual_seed(1)
cfg = Qwen2Config(vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6, max_position_embeddings=32768,
                  attn_implementation="sdpa", **CONFIGS[name])
model = Qwen2ForCausalLM(cfg)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
seg = TOKENS // SEGMENTS
ids = torch.randint(0, 150000, (1, TOKENS))
labels = ids.clone()
pos = torch.arange(seg).repeat(SEGMENTS).unsqueeze(0)
for s in range(SEGMENTS):
    labels[0, s * seg: s * seg + seg // 4] = -100
# labels predict the next token within a segment: the last token of a segment predicts nothing
shifted = labels[:, 1:].clone()
for s in range(1, SEGMENTS):
    shifted[0, s * seg - 1] = -100
block = torch.zeros(TOKENS, TOKENS, dtype=torch.bool)
for s in range(SEGMENTS):
    block[s * seg:(s + 1) * seg, s * seg:(s + 1) * seg] = torch.ones(seg, seg, dtype=torch.bool).tril()
mask = torch.zeros(1, 1, TOKENS, TOKENS).masked_fill(~block, float("-inf"))


def step():
    logits = model(input_ids=ids, position_ids=pos, attention_mask=mask).logits
    loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), shifted[0], ignore_index=-100)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss)


step()
times = []
for _ in range(steps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
best, mean = min(times), sum(times) / len(times)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
params = sum(p.numel() for p in model.parameters())
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {name} ({params} parameters), "
      f"{int((shifted != -100).sum())} loss tokens")
print(f"SFT step: best {best:.3f} s, mean {mean:.3f} s: {TOKENS / best:.0f} tokens/s (best), {TOKENS / mean:.0f} tokens/s (mean)")
print(f"peak RSS {rss:.2f} GiB")
