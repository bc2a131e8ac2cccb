"""Where seglight's bf16 predict spends its time on a CPU, and what torch.compile would add.

Times, for the default model's shape (Unet(resnet18), decoder [128,64,32,16,16], untrained) on --batch images at
352x480: normalising the images, the folded bf16 model (``TorchPredictor.net``), the argmax, the whole
``predict_masks``; the folded model per image at batch 1, 2, 4, 8 against eager fp32 on one image; a profile of one
call by operator; with --compile, the folded model under ``torch.compile`` with inductor's freezing (the compile
time and the steady-state time). Medians of --repeats calls after one warm-up. Run it with the cores to itself.

    python experiments/bench/predict_profile.py [--batch 4] [--repeats 5] [--compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seglight.data.synthetic import render_sample
from seglight.data.transforms import to_input
from seglight.inference.predictor import TorchPredictor
from seglight.model.module import SegmentationModule

sys.path.insert(0, str(Path(__file__).parent))
from predict_speed import timed  # noqa: E402

H, W = 352, 480


def ms(fn, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after a warm-up (``predict_speed.timed``)."""
    return 1000 * timed(fn, repeats)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile with inductor freezing")
    args = ap.parse_args()
    torch.manual_seed(0)
    kwargs = {"decoder_channels": [128, 64, 32, 16, 16]}
    module = SegmentationModule([f"c{i}" for i in range(11)], encoder_name="resnet18", model_kwargs=kwargs).eval()
    predictor = TorchPredictor(module)
    print(f"predictor precision {predictor.precision}; folded bf16 copy: {predictor.net is not module.model}")
    rng = np.random.default_rng(0)
    images = [np.ascontiguousarray(render_sample(rng, size=W)[0][:H]) for _ in range(args.batch)]
    x = torch.cat([to_input(im, predictor.mean, predictor.std) for im in images])
    xb = x.contiguous(memory_format=torch.channels_last).to(torch.bfloat16)
    r = args.repeats
    with torch.inference_mode():
        out_bf16 = predictor.net(xb)
        logits = out_bf16.float()
        rows = {
            "to_input + cat": ms(lambda: torch.cat([to_input(im, predictor.mean, predictor.std) for im in images]), r),
            "folded bf16 model": ms(lambda: predictor.net(xb), r),
            "logits to fp32": ms(lambda: out_bf16.float(), r),
            "numpy argmax": ms(lambda: logits.numpy().argmax(axis=1).astype(np.uint8), r),
            "predict_masks, all of it": ms(lambda: predictor.predict_masks(images), r),
        }
        for name, value in rows.items():
            print(f"{name:28s} {value:8.1f} ms per batch of {args.batch}")
        one = x[:1].contiguous()
        print(f"eager fp32, one NCHW image  {ms(lambda: module.model(one), r):8.1f} ms")
        for b in (1, 2, 4, 8):
            xs = torch.randn(b, 3, H, W).contiguous(memory_format=torch.channels_last).to(torch.bfloat16)
            print(f"folded bf16, batch {b}        {ms(lambda xs=xs: predictor.net(xs), r) / b:8.1f} ms per image")
        with torch.profiler.profile() as prof:
            predictor.net(xb)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
        if args.compile:
            import torch._inductor.config as inductor

            inductor.freezing = True
            compiled = torch.compile(predictor.net)
            t = time.perf_counter()
            out = compiled(xb)
            print(f"torch.compile, first call    {time.perf_counter() - t:8.1f} s")
            print(f"compiled                     {ms(lambda: compiled(xb), r):8.1f} ms per batch")
            print(f"eager, again                 {ms(lambda: predictor.net(xb), r):8.1f} ms per batch")
            agree = (out.argmax(1) == predictor.net(xb).argmax(1)).float().mean().item()
            print(f"argmax agreement, compiled vs eager (untrained model): {agree:.4%}")


if __name__ == "__main__":
    main()
