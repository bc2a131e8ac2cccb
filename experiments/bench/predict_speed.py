"""Predict throughput at 352x480: seglight's predictors vs the plain approach, side by side in one process.

Plain: eager fp32 ``model(x)`` on one image at a time, then softmax and argmax (the textbook loop).
seglight torch: inference_mode, channels_last, bf16 autocast only where the CPU has native bf16, images
of equal size batched. seglight onnx: the exported model under onnxruntime, batched.
Prints a table and a JSON object on its last line; --out writes that JSON to a file.

    python experiments/bench/predict_speed.py [--ckpt PATH] [--images 16] [--batch 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seglight.checkpoint import load_module
from seglight.exporting import export_onnx
from seglight.hardware import cpu_has_fast_bf16
from seglight.inference import OnnxPredictor, TorchPredictor, to_input
from seglight.models.module import SegmentationModule

H, W = 352, 480


def plain(module: SegmentationModule, images: list[np.ndarray]) -> list[np.ndarray]:
    model = module.model.eval().to(memory_format=torch.contiguous_format)
    out = []
    with torch.no_grad():
        for im in images:
            x = to_input(im, module.hparams.mean, module.hparams.std)
            out.append(model(x).softmax(dim=1).argmax(dim=1)[0].numpy())
    return out


def seglight_predict(predictor, images: list[np.ndarray], batch: int) -> list[np.ndarray]:
    out = []
    for i in range(0, len(images), batch):
        out += [p.argmax(0) for p in predictor.predict_images(images[i:i + batch])]
    return out


def timed(fn, repeats: int) -> tuple[float, list[np.ndarray]]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", help="a seglight checkpoint (default: an untrained Unet(resnet18), 11 classes)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    module = load_module(args.ckpt) if args.ckpt else SegmentationModule(
        [f"c{i}" for i in range(11)], encoder_name="resnet18").eval()
    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, (args.images, H // 16, W // 16, 3)).astype(np.uint8)
    images = [np.kron(im, np.ones((16, 16, 1), dtype=np.uint8)) for im in low]  # blocky, not pure noise

    t_plain, ref = timed(lambda: plain(module, images), args.repeats)
    rows = {"plain fp32, 1 image at a time": (t_plain, 1.0)}
    results: dict[str, float | str] = {"size": f"{H}x{W}", "images": args.images, "batch": args.batch,
                                       "cpu_native_bf16": cpu_has_fast_bf16(), "torch_threads": torch.get_num_threads()}
    torch_pred = TorchPredictor(module, device="cpu")
    t_torch, out_torch = timed(lambda: seglight_predict(torch_pred, images, args.batch), args.repeats)
    agree_torch = float(np.mean([(a == b).mean() for a, b in zip(ref, out_torch)]))
    rows[f"seglight torch ({torch_pred.precision}, channels_last, batch {args.batch})"] = (t_torch, agree_torch)
    with tempfile.TemporaryDirectory() as d:
        export_onnx(load_module(args.ckpt) if args.ckpt else module, Path(d) / "m.onnx")
        onnx_pred = OnnxPredictor(Path(d) / "m.onnx")
        t_onnx, out_onnx = timed(lambda: seglight_predict(onnx_pred, images, args.batch), args.repeats)
    agree_onnx = float(np.mean([(a == b).mean() for a, b in zip(ref, out_onnx)]))
    rows[f"seglight onnxruntime (batch {args.batch})"] = (t_onnx, agree_onnx)

    print(f"{'method':55s} {'img/s':>8s} {'speedup':>8s} {'pixel agreement vs fp32':>24s}")
    for name, (t, agree) in rows.items():
        print(f"{name:55s} {args.images / t:8.2f} {t_plain / t:8.2f} {agree:24.4%}")
    results.update({"plain_img_s": args.images / t_plain, "torch_img_s": args.images / t_torch,
                    "onnx_img_s": args.images / t_onnx, "predict_speedup": t_plain / t_torch,
                    "predict_speedup_onnx": t_plain / t_onnx, "pixel_agreement": agree_torch,
                    "pixel_agreement_onnx": agree_onnx})
    line = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()})
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
