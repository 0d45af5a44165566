"""Print where a `cotforge run` spent its time, from its stats.json (used by benches/run.sh).

    python3 benches/stage_times.py out/RUN/stats.json
"""
import json
import sys

stats = json.load(open(sys.argv[1]))
for name, secs in stats["wall_seconds"]:
    print(f"  {secs:7.2f} s  {name}")
for s in stats["stages"]:
    line = f"  stage {s['stage']}: {s['rows_in']} in, {s['rows_out']} kept, {s['seconds']:.2f} s judging"
    if "index_seconds" in s:
        line += f" after a {s['index_seconds']:.2f} s index pass"
    m = s.get("measured", {})
    if "total_tokens" in m:
        # text tokens counted by the tokenizer (image tokens come from the image sizes)
        text = m["total_tokens"]["sum"] - m.get("image_tokens", {}).get("sum", 0.0)
        seg = next(secs for name, secs in stats["wall_seconds"] if s["stage"] in name)
        line += f"; {text:,.0f} text tokens counted, {text / seg:,.0f} tokens/s over the segment"
    print(line)
