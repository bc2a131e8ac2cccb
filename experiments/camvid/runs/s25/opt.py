"""Session 25: the preset's step with AdamW as default, foreach and fused, and the optimizer step alone."""

import statistics
import sys
import time

import segmentation_models_pytorch as smp
import torch

sys.path.insert(0, "/work/main")
from seglight.model.losses import build_loss  # noqa: E402

model = smp.create_model(
    "FPN",
    encoder_name="tu-regnetx_004",
    encoder_weights=None,
    classes=11,
    decoder_pyramid_channels=64,
    decoder_segmentation_channels=32,
)
model = model.to(memory_format=torch.channels_last).train()
loss = build_loss("dice_ce", 11, 11, [1.0] * 11)
x = torch.randn(8, 3, 224, 256).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 11, (8, 224, 256))
variants = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
opts = {k: torch.optim.AdamW(model.parameters(), 1e-3, **kw) for k, kw in variants.items()}


def step(opt: torch.optim.Optimizer) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(model(x), y)
    value.backward()
    opt.step()
    opt.zero_grad()


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
