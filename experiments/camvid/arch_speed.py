"""Training-step throughput of candidate CamVid architectures on this machine (fp32 or bf16, channels_last).

The CamVid preset is bound by how many crops 2 CPU cores can push through in 45 minutes, so the
architecture is chosen by img/s as much as by quality. Each variant runs --steps AdamW steps of
dice-free cross-entropy at batch x crop after one warm-up step; prints img/s, the median and a JSON line.

    python experiments/camvid/arch_speed.py [--batch 8] [--crop 224 256] [--steps 4] [--bf16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import segmentation_models_pytorch as smp
import torch

from seglight.model.memory_format import to_channels_last

VARIANTS: dict[str, tuple[str, dict]] = {
    "Unet r18 dec[128,64,32,16,16]": ("Unet", {"decoder_channels": [128, 64, 32, 16, 16]}),
    "Unet r18 dec[64,32,32,16,16]": ("Unet", {"decoder_channels": [64, 32, 32, 16, 16]}),
    "Linknet r18": ("Linknet", {}),
    "FPN r18": ("FPN", {}),
    "FPN r18 dec 64/32": ("FPN", {"decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32}),
    "DeepLabV3+ r18": ("DeepLabV3Plus", {}),
}


def step_rate(
    arch: str, kwargs: dict, batch: int, crop: tuple[int, int], steps: int, encoder: str, bf16: bool = False
) -> float:
    torch.manual_seed(0)
    model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=11, **kwargs)
    model = to_channels_last(model).train()  # as seglight runs it: GroupNorms contiguous since session 26
    x = torch.randn(batch, 3, *crop).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 11, (batch, *crop))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, nargs=2, default=[224, 256])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast, as precision=bf16-mixed trains")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result: dict[str, float] = {}
    for name, (arch, kwargs) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        result[name] = round(
            step_rate(arch, kwargs, args.batch, tuple(args.crop), args.steps, args.encoder, args.bf16), 3
        )
        print(f"{name:34s} {result[name]:6.2f} img/s", flush=True)
    line = json.dumps(
        {"bf16": args.bf16, "batch": args.batch, "crop": args.crop, "encoder": args.encoder, "img_per_s": result}
    )
    print(line)
    if args.out:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
