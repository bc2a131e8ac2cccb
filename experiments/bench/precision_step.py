"""Training-step throughput of Unet(resnet18) by precision and memory format, on this machine.

Why ``trainer.precision=auto`` picks fp32 on CPUs without native bf16: it measures fp32, channels_last,
bf16 autocast and channels_last + bf16 side by side (median of --steps after a warm-up step).
Prints a table and a JSON line; --out writes the JSON.

    python experiments/bench/precision_step.py [--batch 8] [--size 256] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import segmentation_models_pytorch as smp
import torch

sys.path.insert(0, str(Path(__file__).parent))
from run import cross_entropy, train_step  # noqa: E402

from seglight.util.hardware import cpu_has_fast_bf16  # noqa: E402


def step_rate(channels_last: bool, bf16: bool, batch: int, size: int, steps: int) -> float:
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=5)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 5, (batch, size, size))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        train_step(model, cross_entropy, x, y, opt, scaler, torch.bfloat16 if bf16 else None)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = {"cpu_native_bf16": cpu_has_fast_bf16(), "batch": args.batch, "size": args.size}
    print(f"{'variant':28s} {'img/s':>8s} {'vs fp32':>8s}")
    for name, cl, bf16 in (
        ("fp32", False, False),
        ("channels_last", True, False),
        ("bf16 autocast", False, True),
        ("channels_last + bf16", True, True),
    ):
        rate = step_rate(cl, bf16, args.batch, args.size, args.steps)
        result[name] = round(rate, 3)
        print(f"{name:28s} {rate:8.2f} {rate / result['fp32']:8.2f}", flush=True)
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
