"""Does ``model.compile=true`` pay on this machine? One training step of the CamVid preset's model as it was until
2026-11-28 (FPN resnet18, light decoder; the preset's encoder is RegNetX-400MF since), batch 8 at 224x256, 11
classes, eager and under torch.compile, in the precision and memory format ``precision=auto`` picks here: compile
time (the compiled model's first steps) and steady-state images/s, measured in turns (eager, compiled, eager,
compiled, ...) so both see the same load. Prints a table and a JSON line.

    python experiments/bench/compile_step.py [--steps 5] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from run import cross_entropy, train_step  # noqa: E402

from seglight.model.factory import create_model  # noqa: E402
from seglight.model.memory_format import to_channels_last  # noqa: E402
from seglight.util.hardware import autocast_dtype, cpu_flags, resolve_precision  # noqa: E402

NO_SCALER = torch.amp.GradScaler("cpu", enabled=False)


def make(compiled: bool):
    torch.manual_seed(0)
    model = to_channels_last(
        create_model("FPN", "resnet18", None, 3, 11, decoder_pyramid_channels=64, decoder_segmentation_channels=32)
    )
    if compiled:
        model.compile()
    return model, torch.optim.AdamW(model.parameters(), 1e-3)


def step(model, opt, x, y, dtype) -> None:
    train_step(model, cross_entropy, x, y, opt, NO_SCALER, dtype)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    precision = resolve_precision("auto", "cpu")
    dtype = autocast_dtype(precision)
    x = torch.randn(args.batch, 3, 224, 256).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 11, (args.batch, 224, 256))
    models = {name: make(name == "compiled") for name in ("eager", "compiled")}
    warmup = {}
    for name, (model, opt) in models.items():  # first steps: eager warm-up, or compilation (forward + backward)
        t = time.perf_counter()
        for _ in range(2):
            step(model, opt, x, y, dtype)
        warmup[name] = time.perf_counter() - t
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, (model, opt) in models.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                step(model, opt, x, y, dtype)
            rates[name].append(args.steps * args.batch / (time.perf_counter() - t))
    median = {k: statistics.median(v) for k, v in rates.items()}
    out = {
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512_bf16", "amx_bf16"}),
        "precision": precision,
        "batch": args.batch,
        "warmup_s": warmup,
        "compile_s": warmup["compiled"] - warmup["eager"],
        "img_s": rates,
        "median_img_s": median,
        "compile_speedup": median["compiled"] / median["eager"],
    }
    for name in models:
        print(f"{name:9s} first 2 steps {warmup[name]:6.1f} s   steady {median[name]:5.2f} img/s")
    print(json.dumps(out))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
