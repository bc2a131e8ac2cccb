"""Session 25: a torch profile of 4 training steps of the CamVid preset's model and loss (output: prof.txt).
``model``, ``loss``, ``x``, ``y`` and ``step(optimizer)`` are opt.py's too."""

import sys

import segmentation_models_pytorch as smp
import torch
from torch.profiler import ProfilerActivity, profile

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
x = torch.randn(8, 3, 224, 256).contiguous(memory_format=torch.channels_last)  # (B,3,H,W)
y = torch.randint(0, 11, (8, 224, 256))  # (B,H,W)


def step(opt: torch.optim.Optimizer) -> None:
    """One training step of ``model`` on (x, y) under bf16 autocast."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(model(x), y)
    value.backward()
    opt.step()
    opt.zero_grad()


if __name__ == "__main__":
    adamw = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(2):
        step(adamw)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(4):
            step(adamw)
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
