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

The rows take turns: each is warmed up, then every round runs each once, in an order rotated per round; medians.
``predict_speedup`` is the default path's (torch): ``predict_speedup_fastest`` the fastest backend's. Before
2026-11-27 ``predict_speedup`` was the fastest backend's, and the rows ran one after another.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

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


def plain(model: torch.nn.Module, module: SegmentationModule, images: list[np.ndarray], device: str = "cpu"):
    """Index masks of the textbook loop: ``model`` (a copy of ``module.model``: the predictors hold the original in
    channels_last, which this must not change) in fp32, contiguous, one image at a time, softmax, argmax."""
    model = model.eval().to(device).to(memory_format=torch.contiguous_format)
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


def timed_in_turns(arms: dict[str, Callable[[], list[np.ndarray]]], repeats: int) -> dict[str, tuple[float, list]]:
    """{arm: (median seconds, its output)}: each arm warmed up once, then ``repeats`` rounds in which every arm runs
    once, the order rotated each round, so a slow spell of the machine falls on every arm alike."""
    names = list(arms)
    outputs = {name: arms[name]() for name in names}  # warm-up (and the output the agreement is measured on)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - t)
    return {name: (statistics.median(times[name]), outputs[name]) for name in names}


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
    # without a checkpoint: an untrained model of the default config (conf/model/unet.yaml's light decoder)
    light = {"decoder_channels": [128, 64, 32, 16, 16]}
    module = load_module(ckpt) if ckpt else SegmentationModule([f"c{i}" for i in range(11)], model_kwargs=light).eval()
    ims = shapes_images(images)
    textbook = copy.deepcopy(module.model)
    arms: dict[str, Callable[[], list[np.ndarray]]] = {"plain": lambda: plain(textbook, module, ims, device)}
    names = {"plain": "plain fp32, 1 image at a time"}

    def add(key: str, name: str, predictor) -> None:
        arms[key], names[key] = (lambda: seglight_predict(predictor, ims, batch)), name

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
        timings = timed_in_turns(arms, repeats)
    t_plain, ref = timings["plain"]
    rows = {
        key: (names[key], t, float(np.mean([(a == b).mean() for a, b in zip(ref, out)])))
        for key, (t, out) in timings.items()
    }

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
    # the predict_speedup: what `seglight.predict ckpt=<.ckpt>` runs without options (torch, precision=auto,
    # equal-size images batched); predict_speedup_default says the same (its name before 2026-11-27)
    result["predict_speedup_default"] = result["predict_speedup"] = result["predict_speedup_torch"]
    result.update(predict_backend="torch", pixel_agreement=rows["torch"][2])
    # the fastest backend among those that keep >= 99.5 % of pixels (int8 ONNX needs `export format=onnx_int8`)
    best = min((k for k in rows if k != "plain" and rows[k][2] >= 0.995), key=lambda k: rows[k][1], default=None)
    if best is None:
        result.update(predict_backend_fastest="none (each below 99.5 % of pixels)")
    else:
        result.update(
            predict_backend_fastest=best,
            predict_speedup_fastest=t_plain / rows[best][1],
            pixel_agreement_fastest=rows[best][2],
        )
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
