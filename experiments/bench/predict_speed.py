"""Predict throughput at 352x480: seglight's predictors vs the plain approach, side by side in one process.

Plain: eager fp32 ``model(x)`` on one image at a time, then softmax and argmax (the textbook loop).
seglight torch: inference_mode, channels_last, bf16 autocast only where the CPU has native bf16, images
of equal size batched. seglight onnx: the exported model under onnxruntime, batched. onnx int8: the same
after static int8 quantisation (``format=onnx_int8``), calibrated on 8 other images. All seglight rows
make masks through ``Predictor.predict_masks`` (what ``seglight.predict`` writes): the argmax of the
logits, the same mask as the argmax of their softmax.
Images: the shapes data at 352x480 (what the default checkpoint was trained on).
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

from seglight.data.synthetic import render_sample
from seglight.data.transforms import to_input
from seglight.inference.export import export_onnx, export_onnx_int8
from seglight.inference.predictor import OnnxPredictor, TorchPredictor
from seglight.model.checkpoint import load_module
from seglight.model.module import SegmentationModule
from seglight.util.hardware import cpu_has_fast_bf16

H, W = 352, 480


def plain(module: SegmentationModule, images: list[np.ndarray], device: str = "cpu") -> list[np.ndarray]:
    model = module.model.eval().to(device).to(memory_format=torch.contiguous_format)
    out = []
    with torch.no_grad():
        for im in images:
            x = to_input(im, module.hparams.mean, module.hparams.std).to(device)
            out.append(model(x).softmax(dim=1).argmax(dim=1)[0].cpu().numpy())
    return out


def seglight_predict(predictor, images: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Index masks the way ``seglight.predict`` makes them (without writing PNGs)."""
    out = []
    for i in range(0, len(images), batch):
        out += predictor.predict_masks(images[i : i + batch])
    return out


def timed(fn, repeats: int) -> tuple[float, list[np.ndarray]]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def shapes_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """n images (352,480,3) uint8 of the shapes data set (what the default checkpoint was trained on)."""
    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(render_sample(rng, size=W, max_shapes=8)[0][:H]) for _ in range(n)]


def measure(
    ckpt: str | None, images: int = 16, batch: int = 4, repeats: int = 3, device: str = "cpu"
) -> dict[str, float | str]:
    """Times plain fp32, seglight torch, seglight onnxruntime and onnxruntime int8 on the same images;
    prints a table and returns img/s, speedups and pixel agreement with the plain fp32 argmax. On
    ``device='cuda'`` plain fp32 and seglight torch run on the GPU, and the (CPU) onnxruntime rows are left out."""
    torch.manual_seed(0)
    module = (
        load_module(ckpt) if ckpt else SegmentationModule([f"c{i}" for i in range(11)], encoder_name="resnet18").eval()
    )
    ims = shapes_images(images)
    t_plain, ref = timed(lambda: plain(module, ims, device), repeats)
    rows = {"plain": ("plain fp32, 1 image at a time", t_plain, 1.0)}

    def add(key: str, name: str, predictor) -> None:
        t, out = timed(lambda: seglight_predict(predictor, ims, batch), repeats)
        rows[key] = (name, t, float(np.mean([(a == b).mean() for a, b in zip(ref, out)])))

    torch_pred = TorchPredictor(module, device=device)
    add("torch", f"seglight torch ({torch_pred.precision}, channels_last, batch {batch})", torch_pred)
    if torch_pred.net is not torch_pred.module.model:  # bf16, norms folded: time the autocast path it replaced too
        autocast = TorchPredictor(module, device=device)
        autocast.net = autocast.module.model
        add("torch_autocast", f"seglight torch (bf16 autocast, norms unfolded, batch {batch})", autocast)
    with tempfile.TemporaryDirectory() as d:
        if device == "cpu":  # onnxruntime runs on the CPU here: no GPU rows
            export_onnx(load_module(ckpt) if ckpt else module, Path(d) / "m.onnx")
            add("onnx", f"seglight onnxruntime fp32 (batch {batch})", OnnxPredictor(Path(d) / "m.onnx"))
            export_onnx_int8(load_module(ckpt) if ckpt else module, Path(d) / "q.onnx", shapes_images(8, seed=1))
            add(
                "onnx_int8",
                f"seglight onnxruntime int8 (batch {batch}, 8 calibration images)",
                OnnxPredictor(Path(d) / "q.onnx"),
            )

    print(f"{'method':62s} {'img/s':>7s} {'speedup':>8s} {'pixel agreement vs fp32':>24s}")
    for name, t, agree in rows.values():
        print(f"{name:62s} {images / t:7.2f} {t_plain / t:8.2f} {agree:24.4%}")
    result: dict[str, float | str] = {
        "size": f"{H}x{W}",
        "images": images,
        "batch": batch,
        "cpu_native_bf16": cpu_has_fast_bf16(),
        "torch_threads": torch.get_num_threads(),
    }
    for key, (_, t, agree) in rows.items():
        result[f"{key}_img_s"] = images / t
        if key != "plain":
            result[f"predict_speedup_{key}"] = t_plain / t
            result[f"pixel_agreement_{key}"] = agree
    # what `seglight.predict ckpt=<.ckpt>` runs without options: torch, precision=auto, equal-size images batched
    result["predict_speedup_default"] = result["predict_speedup_torch"]
    # the headline: seglight predict's fastest backend among those that keep >= 99.5 % of pixels
    best = min((k for k in rows if k != "plain" and rows[k][2] >= 0.995), key=lambda k: rows[k][1], default=None)
    if best is None:
        result.update(predict_backend="none (each below 99.5 % of pixels)", predict_speedup=1.0, pixel_agreement=1.0)
    else:
        result.update(predict_backend=best, predict_speedup=t_plain / rows[best][1], pixel_agreement=rows[best][2])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", help="a seglight checkpoint (default: an untrained Unet(resnet18), 11 classes)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    results = measure(args.ckpt, args.images, args.batch, args.repeats)
    line = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()})
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
