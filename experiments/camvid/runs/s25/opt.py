"""Session 25: the preset's step with AdamW as default, foreach and fused, and the optimizer step alone (output:
opt.txt). The model, batch and step are prof.py's."""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from prof import model, step  # noqa: E402

variants = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
opts = {k: torch.optim.AdamW(model.parameters(), 1e-3, **kw) for k, kw in variants.items()}
res: dict[str, list[float]] = {k: [] for k in opts}
for _ in range(5):
    for k, o in opts.items():
        step(o)
        start = time.perf_counter()
        for _ in range(4):
            step(o)
        res[k].append(32 / (time.perf_counter() - start))
print({k: (round(statistics.median(v), 2), round(min(v), 1), round(max(v), 1)) for k, v in res.items()})
for k, o in opts.items():  # the optimizer step alone, on random gradients
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    o.step()
    start = time.perf_counter()
    for _ in range(10):
        o.step()
    print(k, "opt.step ms", round((time.perf_counter() - start) * 100, 1))
