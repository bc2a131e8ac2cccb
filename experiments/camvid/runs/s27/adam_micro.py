"""Session 27: AdamW step time on the preset model's parameters (light FPN on RegNetX-400MF): torch's default
multi-tensor step (foreach), the fused step and the for-loop step; medians of 10 steps, 5 turns."""

import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "s25"))
from prof import model  # noqa: E402  (session 25's: the preset's model, built directly)

print("params", sum(p.numel() for p in model.parameters()))
for p in model.parameters():
    p.grad = torch.randn_like(p)
arms = {}
for name, kwargs in {"foreach": {"foreach": True}, "fused": {"fused": True}, "forloop": {"foreach": False}}.items():
    copied = copy.deepcopy(model)
    for p, q in zip(copied.parameters(), model.parameters()):
        p.grad = q.grad.clone()
    arms[name] = (copied, torch.optim.AdamW(copied.parameters(), lr=2e-3, weight_decay=1e-4, **kwargs))
ms = {k: [] for k in arms}
for _ in range(5):
    for k, (_, opt) in arms.items():
        times = []
        for _ in range(12):
            start = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - start)
        ms[k].append(statistics.median(times[2:]) * 1e3)
for k, v in ms.items():
    print(k, [round(x, 2) for x in v], "median", round(statistics.median(v), 2))
a, b = arms["foreach"][0], arms["fused"][0]
with torch.no_grad():
    gap = max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))
print("max param diff fused vs foreach", gap)
