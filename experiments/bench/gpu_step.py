"""Training-step throughput on a CUDA GPU by precision, memory format and torch.compile, for the default model (Unet
resnet18) and the CamVid preset's until 2026-11-28 (FPN resnet18, light decoder), 11 classes, 256x256, synthetic
batches in GPU memory (no DataLoader). Variants: fp32, fp32 + channels_last, bf16 autocast, bf16 + channels_last
(what ``precision=auto`` picks on a GPU with bf16), fp16 + channels_last with a GradScaler (``16-mixed``), and bf16 +
channels_last under torch.compile. Each is timed in turns (3 repeats, medians) after warm-up steps; compile time is
the compiled model's first steps minus the eager model's. Prints a table and a JSON line.

    python experiments/bench/gpu_step.py [--steps 20] [--repeats 3] [--batches 8 32] [--out FILE]
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
from run import cross_entropy, emit, train_step  # noqa: E402

from seglight.model.factory import create_model  # noqa: E402

MODELS = {
    "unet_r18": ("Unet", {}),
    "fpn_r18_light": ("FPN", {"decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32}),
}
# name: (autocast dtype, channels_last, compiled)
VARIANTS = {
    "fp32": (None, False, False),
    "fp32_cl": (None, True, False),
    "bf16": (torch.bfloat16, False, False),
    "bf16_cl": (torch.bfloat16, True, False),
    "fp16_cl": (torch.float16, True, False),
    "bf16_cl_compiled": (torch.bfloat16, True, True),
}


class Stepper:
    """One model, optimizer and (for fp16) GradScaler; ``run(n)`` takes n training steps on a fixed batch."""

    def __init__(self, arch: str, kwargs: dict, variant: tuple, batch: int, size: int) -> None:
        self.dtype, channels_last, compiled = variant
        torch.manual_seed(0)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = create_model(arch, "resnet18", None, 3, 11, **kwargs).cuda().to(memory_format=fmt)
        if compiled:
            self.model.compile()
        self.opt = torch.optim.AdamW(self.model.parameters(), 1e-3)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.x = torch.randn(batch, 3, size, size, device="cuda").contiguous(memory_format=fmt)
        self.y = torch.randint(0, 11, (batch, size, size), device="cuda")

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` steps, the GPU's queued work included."""
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            train_step(self.model, cross_entropy, self.x, self.y, self.opt, self.scaler, self.dtype)
        torch.cuda.synchronize()
        return time.perf_counter() - t


def bench(model: str, batch: int, size: int, steps: int, repeats: int, compile_: bool) -> dict[str, object]:
    arch, kwargs = MODELS[model]
    torch.cuda.reset_peak_memory_stats()
    variants = {k: v for k, v in VARIANTS.items() if compile_ or not v[2]}
    steppers = {name: Stepper(arch, kwargs, v, batch, size) for name, v in variants.items()}
    warmup = {name: s.run(3) for name, s in steppers.items()}  # cudnn autotuning, or compilation
    rates: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(repeats):
        for name, s in steppers.items():
            rates[name].append(steps * batch / s.run(steps))
    median = {k: statistics.median(v) for k, v in rates.items()}
    out: dict[str, object] = {
        "model": model,
        "batch": batch,
        "size": size,
        "img_s": median,
        "img_s_ranges": {k: [min(v), max(v)] for k, v in rates.items()},
        "vs_fp32": {k: v / median["fp32"] for k, v in median.items()},
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30,
    }
    if compile_:
        out["compile_s"] = warmup["bf16_cl_compiled"] - warmup["bf16_cl"]
    print(f"== {model}, batch {batch}, {size}x{size}")
    for name, v in median.items():
        lo, hi = min(rates[name]), max(rates[name])
        print(f"  {name:18s} {v:8.1f} img/s  ({lo:.1f}-{hi:.1f})  {v / median['fp32']:5.2f}x fp32")
    del steppers
    torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--no-compile", action="store_true", help="leave out the compiled variant")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True  # what trainer=gpu sets
    runs: list[dict[str, object]] = []
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "runs": runs}
    for model in args.models:
        for batch in args.batches:
            compile_ = not args.no_compile and batch == max(args.batches)
            runs.append(bench(model, batch, args.size, args.steps, args.repeats, compile_))
            if args.out:  # what was measured so far survives a timeout
                args.out.write_text(json.dumps(result) + "\n")
    emit(result, args.out)


if __name__ == "__main__":
    main()
