"""seglight's speed side by side with the plain PyTorch way, measured in one process on this machine.

Sections (each prints a table; the last line of output is one JSON object with every figure):

- parity: ``python -m seglight.train`` on the shapes data twice, with seglight's defaults and in plain
  fp32 (``trainer.precision=32-true model.channels_last=false``): val mIoU of both, wall time, and the
  peak resident memory of the default run (``peak_rss_mb``, from ``wait4``: the largest process).
- predict: ``predict_speed.measure`` with the default run's best.ckpt at 352x480: ``predict_speedup`` (and
  ``predict_speedup_default``) what ``seglight.predict`` runs without options (torch, ``precision=auto``),
  ``predict_speedup_fastest`` the fastest backend that keeps >= 99.5 % of pixels (``predict_backend_fastest``;
  before 2026-11-27 that was ``predict_speedup``); each backend has its own keys, img/s as ``predict_<row>_img_s``.
- lut: palette lookup vs a per-colour ``np.all(mask == colour, -1)`` loop, 32 colours, 720x960.
- train: images/s of (a) the textbook fp32 loop, (b) the same loop with seglight's precision and memory
  format, (c) seglight's Trainer with the default trainer config, (d) the bare model step: the module's
  forward, loss, backward and optimizer step on one synthetic batch held in memory, in the Trainer's precision
  and memory format (no DataLoader, metrics or logging); all on one model config, DataModule and batch
  (CamVid-size images, 256x256 crops, batch 8), timed after warm-up steps, medians over repeats taken in
  turn (a, b, c, d, a, b, c, d, ...). ``train_speedup`` = c / a, ``lightning_overhead`` = 1 - c / b,
  ``bare_step_img_s`` = d, ``trainer_efficiency`` = c / d.
- loader: the train DataLoader alone (same workers and augmentations) / the Trainer's step rate
  (``loader_headroom``).

    python experiments/bench/run.py [--quick] [--out FILE]

``--quick`` (under 10 minutes on 2 cores) trains 3 epochs instead of 10 and times fewer steps, still with 3
alternating repeats and their medians.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).parent))
from predict_speed import measure as measure_predict  # noqa: E402
from predict_speed import timed_in_turns

from seglight.config import ROOT, compose_config  # noqa: E402
from seglight.data.palette import Palette  # noqa: E402
from seglight.training.fit import build_module, build_trainer  # noqa: E402
from seglight.util.hardware import autocast_dtype, cpu_has_fast_bf16, resolve_precision  # noqa: E402

CAMVID = ROOT.parent / "shared" / "camvid"
CPU = torch.device("cpu")
SECTIONS = ["parity", "predict", "lut", "train"]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# ---- parity: default vs fp32 training on the shapes data, through the real entry point ----------------
def train_run(run_dir: Path, overrides: list[str]) -> dict[str, float]:
    """Runs ``python -m seglight.train`` in a child process; its val mIoU, wall time and peak RSS."""
    cmd = [
        sys.executable,
        "-m",
        "seglight.train",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    t = time.perf_counter()
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"training failed ({proc.returncode}); see {log.name}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "miou": metrics["val/mIoU"],
        "wall_s": time.perf_counter() - t,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "best_ckpt": metrics["best_ckpt"],
    }


def parity(work: Path, quick: bool, device: torch.device) -> tuple[dict[str, float], str]:
    common = [*gpu_overrides(device), *(["trainer.max_epochs=3"] if quick else [])]
    fast = train_run(work / "defaults", common)
    fp32 = train_run(work / "fp32", [*common, "trainer.precision=32-true", "model.channels_last=false"])
    print(f"{'shapes training':32s} {'val mIoU':>9s} {'wall s':>8s} {'peak RSS MB':>12s}")
    for name, r in (("seglight defaults", fast), ("plain fp32", fp32)):
        print(f"{name:32s} {r['miou']:9.4f} {r['wall_s']:8.1f} {r['peak_rss_mb']:12.0f}")
    return {
        "miou_defaults": fast["miou"],
        "miou_fp32": fp32["miou"],
        "miou_delta": fast["miou"] - fp32["miou"],
        "train_wall_s_defaults": fast["wall_s"],
        "train_wall_s_fp32": fp32["wall_s"],
        "peak_rss_mb": fast["peak_rss_mb"],
    }, fast["best_ckpt"]


# ---- lut: colour mask -> index mask ---------------------------------------------------------------
def per_colour_loop(mask: np.ndarray, colors: list[tuple[int, int, int]]) -> np.ndarray:
    out = np.zeros(mask.shape[:2], np.uint8)
    for i, c in enumerate(colors):
        out[np.all(mask == c, -1)] = i
    return out


def lut_bench(repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    colors = [tuple(int(v) for v in c) for c in rng.choice(256, (32, 3))]
    palette = Palette([f"c{i}" for i in range(32)], colors)
    index = np.kron(rng.integers(0, 32, (720 // 8, 960 // 8)), np.ones((8, 8), dtype=np.int64))
    mask = np.array(colors, np.uint8)[index]  # (720,960,3)
    assert (palette.to_index(mask) == per_colour_loop(mask, colors)).all()  # same answer (also builds the LUT)
    timings = timed_in_turns(
        {"lut": lambda: palette.to_index(mask), "loop": lambda: per_colour_loop(mask, colors)}, repeats * 5
    )
    t_lut, t_loop = timings["lut"][0], timings["loop"][0]
    print(f"palette lookup {t_lut * 1e3:.1f} ms, per-colour loop {t_loop * 1e3:.1f} ms (720x960, 32 colours)")
    return {"lut_ms": t_lut * 1e3, "loop_ms": t_loop * 1e3, "lut_speedup": t_loop / t_lut}


# ---- train: plain loops and the Trainer on one model, DataModule and batch ---------------------------
def gpu_overrides(device: torch.device) -> list[str]:
    """The trainer config a researcher picks on a GPU (``trainer=gpu``); nothing on the CPU."""
    return ["trainer=gpu"] if device.type == "cuda" else []


def sync(device: torch.device) -> None:
    """Waits for the GPU's queued work, so a clock read after it counts that work (nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_epoch_window(work: Path) -> list[str]:
    """Overrides for timing training steps: one epoch, no validation, CSV logs and checkpoints under ``work``."""
    return [
        "logger=csv",
        f"run_dir={work / 'trainer'}",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "trainer.limit_val_batches=0",
        "trainer.max_epochs=1",
    ]


def train_config(work: Path, *extra: str, shapes: int = 96) -> DictConfig:
    """The default config on CamVid-size data: real CamVid when ../shared/camvid exists, else ``shapes`` images of
    416x416 (the same pixel count as CamVid's 360x480); 256x256 crops, batch 8; then ``extra`` overrides."""
    data = (
        ["data=camvid", f"data.root={CAMVID}"]
        if (CAMVID / "train").is_dir()
        else ["data.image_size=416", f"data.num_train={shapes}", "data.num_val=8", f"data.root={work / 'data'}"]
    )
    return compose_config([*data, "data.crop_size=256", "data.batch_size=8", *one_epoch_window(work), *extra])


def batches(loader) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from loader


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (B,C,H,W) taken in fp32: the loss of the isolated step benches."""
    return torch.nn.functional.cross_entropy(logits.float(), target)


def train_step(model, loss_fn, x: torch.Tensor, y: torch.Tensor, optimizer, scaler, dtype) -> None:
    """One training step on x (B,C,H,W), y (B,H,W) on the model's device: forward under autocast ``dtype`` (None:
    full precision), ``loss_fn``, backward through ``scaler`` (a GradScaler; enabled for float16), optimizer step."""
    with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()


def timed_steps(model, loss_fn, pairs, cfg: DictConfig, dtype, fmt, device: torch.device, warmup: int, steps: int):
    """Images/s of ``steps`` training steps after ``warmup``: forward under autocast ``dtype`` (None: full
    precision; float16 with a GradScaler), ``loss_fn``, backward, AdamW step (the config's lr and weight decay),
    on (image, mask) pairs from the iterator ``pairs``, the image in memory format ``fmt``; the clock runs from
    the start of step ``warmup`` (as TrainTimer's) to the end of the GPU's queued work."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    images, start = 0, 0.0
    for i, (x, y) in zip(range(warmup + steps), pairs):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        train_step(model, loss_fn, x, y.to(device, non_blocking=True), optimizer, scaler, dtype)
        images += x.shape[0] if i >= warmup else 0
    sync(device)
    return images / (time.perf_counter() - start)


def plain_loop(cfg: DictConfig, dm, warmup: int, steps: int, fast: bool, device: torch.device = CPU) -> float:
    """Images/s of the textbook loop (fp32, contiguous, CrossEntropyLoss) on the DataModule's batches, or with
    seglight's precision and channels_last."""
    pl.seed_everything(cfg.seed, verbose=False)
    fmt = torch.channels_last if fast else torch.contiguous_format
    model = build_module(cfg, dm).model.to(device).to(memory_format=fmt).train()
    dtype = autocast_dtype(resolve_precision(cfg.trainer.precision, device.type)) if fast else None
    pairs = ((b["image"], b["mask"]) for b in batches(dm.train_dataloader()))
    criterion = torch.nn.CrossEntropyLoss(ignore_index=dm.ignore_index)
    return timed_steps(model, criterion, pairs, cfg, dtype, fmt, device, warmup, steps)


def bare_step(cfg: DictConfig, dm, warmup: int, steps: int, device: torch.device = CPU) -> float:
    """Images/s of the module's own step on one synthetic batch in memory: forward under the Trainer's precision,
    the configured loss, backward, optimizer step, in the module's memory format; nothing else."""
    pl.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg, dm).to(device).train()
    dtype = autocast_dtype(resolve_precision(cfg.trainer.precision, device.type))
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    x, y = synthetic_batch(dm, fmt, device)
    return timed_steps(module.model, module.loss_fn, itertools.repeat((x, y)), cfg, dtype, fmt, device, warmup, steps)


def synthetic_batch(
    dm, fmt: torch.memory_format, device: torch.device = CPU, void: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One seeded batch of the DataModule's size: images (B,C,H,W) of N(0, 1) noise in memory format ``fmt`` and
    masks (B,H,W) of random classes, their top eighth void (``ignore_index``) if ``void``, as CamVid has."""
    g = torch.Generator().manual_seed(0)
    h, w = (dm.crop_size, dm.crop_size) if isinstance(dm.crop_size, int) else dm.crop_size
    x = torch.randn(dm.batch_size, len(dm.mean), h, w, generator=g).to(device).contiguous(memory_format=fmt)
    y = torch.randint(0, dm.num_classes, (dm.batch_size, h, w), generator=g)
    if void:
        y[:, : h // 8] = dm.ignore_index
    return x, y.to(device)


class TrainTimer(pl.Callback):
    """Images/s of training steps ``warmup``.. (from the start of that step to the end of the last)."""

    def __init__(self, warmup: int, device: torch.device = CPU) -> None:
        self.warmup, self.device, self.images, self.start, self.end = warmup, device, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx >= self.warmup:
            self.images += batch["image"].shape[0]
            if batch_idx + 1 == trainer.num_training_batches:  # the last step: its GPU work counts too
                sync(self.device)
            self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / (self.end - self.start)


def trainer_loop(
    cfg: DictConfig, dm, warmup: int, steps: int, device: torch.device = CPU, edit: Callable[[Any], None] | None = None
) -> float:
    """Images/s of seglight's Trainer (default trainer and callbacks config) over the same steps; ``edit(module)``
    changes the built module first (an arm of a bench: another loss, another norm layer)."""
    pl.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg, dm)
    if edit is not None:
        edit(module)
    timer = TrainTimer(warmup, device)
    trainer = build_trainer(cfg, limit_train_batches=warmup + steps, enable_model_summary=False)
    trainer.callbacks.append(timer)
    trainer.fit(module, datamodule=dm)
    if trainer.num_training_batches != warmup + steps:  # an epoch shorter than the window: fewer steps timed
        raise RuntimeError(f"one epoch holds {trainer.num_training_batches} batches, {warmup + steps} needed")
    return timer.rate


def loader_rate(dm, warmup: int, batches_: int) -> float:
    """Images/s of the train DataLoader alone (same workers, augmentations and batch)."""
    images, start = 0, 0.0
    for i, batch in zip(range(warmup + batches_), batches(dm.train_dataloader())):
        if i == warmup:
            start = time.perf_counter()
        images += batch["image"].shape[0] if i >= warmup else 0
    return images / (time.perf_counter() - start)


def arm_args(doc: str) -> argparse.Namespace:
    """The command line of the benches that time arms of the preset's step in turns (loss_step, norm_layout)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--trainer", type=int, default=0, help="also time the Trainer for this many steps per arm")
    ap.add_argument("--out", type=Path)
    return ap.parse_args()


def preset_module(work: Path) -> tuple[DictConfig, Any, Any]:
    """(config, DataModule, module in train mode) of ``experiment=camvid`` on CamVid, seeded, outputs under ``work``;
    no image cache (the step benches time batches in memory)."""
    cfg = compose_config(["experiment=camvid", f"data.root={CAMVID}", f"run_dir={work}", "data.cache_images=false"])
    dm = prepared_datamodule(cfg)
    torch.manual_seed(cfg.seed)
    return cfg, dm, build_module(cfg, dm).train()


def in_turns(names: list[str], repeats: int) -> Iterator[str]:
    """``names`` ``repeats`` times, each repeat starting one later: arms of a bench taking turns."""
    for r in range(repeats):
        k = r % len(names)
        yield from names[k:] + names[:k]


def step_rates(arms: dict[str, Callable[[], None]], repeats: int, steps: int, images: int) -> dict[str, list[float]]:
    """img/s of each arm's step function (``images`` images a call), in turns: a warm-up call, then ``steps`` timed."""
    rates: dict[str, list[float]] = {k: [] for k in arms}
    for name in in_turns(list(arms), repeats):
        arms[name]()
        start = time.perf_counter()
        for _ in range(steps):
            arms[name]()
        rates[name].append(steps * images / (time.perf_counter() - start))
    return rates


def trainer_rates(work: Path, edits: dict[str, Callable[[Any], None] | None], repeats: int, steps: int):
    """img/s of seglight's Trainer on the CamVid preset's real batches (2 warm-up steps, then ``steps``) with each
    arm's ``edit`` of the built module, in turns."""
    cfg = compose_config(
        ["experiment=camvid", f"data.root={CAMVID}", *one_epoch_window(work), "callbacks.time_budget.budget=null"]
    )
    dm = prepared_datamodule(cfg)
    rates: dict[str, list[float]] = {k: [] for k in edits}
    for name in in_turns(list(edits), repeats):
        rates[name].append(trainer_loop(cfg, dm, 2, steps, edit=edits[name]))
    return rates


def rates_summary(rates: dict[str, list[float]], new: str, old: str, prefix: str = "") -> dict[str, float | str]:
    """``{prefix}{arm}_img_s`` (median), ``{prefix}{arm}_range`` and ``{prefix}speedup`` = new / old (medians)."""
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        **{f"{prefix}{k}_img_s": v for k, v in med.items()},
        **{f"{prefix}{k}_range": f"{min(v):.2f}-{max(v):.2f}" for k, v in rates.items()},
        f"{prefix}speedup": med[new] / med[old],
    }


def prepared_datamodule(cfg: DictConfig):
    """The config's DataModule, set up for fit; its image cache filled first (steady state is what is timed)."""
    dm = instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    if dm.cache_images:
        train = dm.datasets["train"]
        for i in range(len(train)):
            train.read_image(i)
    return dm


def train_bench(work: Path, quick: bool, device: torch.device) -> dict[str, float | str]:
    warmup, steps, repeats = (1, 4, 3) if quick else (2, 8, 3)
    if device.type == "cuda":  # steps of milliseconds: more of them, a longer warm-up, and every variant with
        warmup, steps = (5, 40) if quick else (10, 100)  # the cudnn autotuner that trainer=gpu turns on
        torch.backends.cudnn.benchmark = True
    # one epoch holds the whole window (the Trainer times one epoch), whole batches of 8
    cfg = train_config(work, *gpu_overrides(device), shapes=max(96, 8 * (warmup + steps)))
    dm = prepared_datamodule(cfg)
    runs: dict[str, list[float]] = {
        "plain fp32": [],
        "plain, seglight precision + memory format": [],
        "seglight Trainer (default config)": [],
        "bare model step (synthetic batch in memory)": [],
    }
    for r in range(repeats):
        for name, fn in zip(
            runs,
            (
                lambda: plain_loop(cfg, dm, warmup, steps, fast=False, device=device),
                lambda: plain_loop(cfg, dm, warmup, steps, fast=True, device=device),
                lambda: trainer_loop(cfg, dm, warmup, steps, device),
                lambda: bare_step(cfg, dm, warmup, steps, device),
            ),
        ):
            runs[name].append(fn())
            print(f"  repeat {r + 1}/{repeats} {name}: {runs[name][-1]:.2f} img/s", flush=True)
    rate = {k: statistics.median(v) for k, v in runs.items()}
    plain32, plain_fast, seg, bare = rate.values()
    loader_steps = steps if device.type == "cuda" else 4 if quick else 12
    loader = statistics.median(loader_rate(dm, 1, loader_steps) for _ in range(repeats))
    precision = resolve_precision(cfg.trainer.precision, device.type)
    print(f"{'training (' + dm.__class__.__name__ + ', 256x256 crops, batch 8)':52s} {'img/s':>8s} {'vs fp32':>8s}")
    for name, v in rate.items():
        print(f"{name:52s} {v:8.2f} {v / plain32:8.2f}")
    print(f"{'train DataLoader alone (' + str(dm.num_workers) + ' workers)':52s} {loader:8.2f}")
    return {
        "train_data": dm.__class__.__name__,
        "train_precision": precision,
        "train_img_s_plain_fp32": plain32,
        "train_img_s_plain_same_precision": plain_fast,
        "train_img_s_seglight": seg,
        "train_speedup": seg / plain32,
        "lightning_overhead": 1 - seg / plain_fast,
        "bare_step_img_s": bare,
        "trainer_efficiency": seg / bare,
        "loader_img_s": loader,
        "loader_headroom": loader / seg,
        "num_workers": dm.num_workers,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and steps, 3 repeats (< 10 min on 2 cores)")
    ap.add_argument("--out", type=Path, help="also write the JSON object here")
    ap.add_argument("--keep", type=Path, help="keep the runs' folders here (default: a temporary folder)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: train and predict on the GPU")
    ap.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS, help="run only these sections")
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    device = torch.device(args.device)
    result: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "cpu_native_bf16": cpu_has_fast_bf16(),
        # an emulated AVX2-only CPU: ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 (onnxruntime ignores both)
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL"),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        best_ckpt = None  # predict without parity: an untrained model of the default config
        if "parity" in args.sections:
            print("== parity: shapes training, seglight defaults vs plain fp32", flush=True)
            figures, best_ckpt = parity(work, args.quick, device)
            result.update(figures)
        if "predict" in args.sections:
            print("== predict at 352x480", flush=True)
            predict = measure_predict(best_ckpt, images=8 if args.quick else 16, batch=4, repeats=3, device=args.device)
            result.update({k: v for k, v in predict.items() if k.startswith(("predict_", "pixel_agreement"))})
            result.update({f"predict_{k}": v for k, v in predict.items() if k.endswith("_img_s")})
        if "lut" in args.sections:
            print("== palette lookup", flush=True)
            result.update(lut_bench(3))
        if "train" in args.sections:
            print("== training throughput and loader headroom", flush=True)
            result.update(train_bench(work, args.quick, device))
    emit(result, args.out)


def emit(result: dict, out: Path | None) -> None:
    """Prints ``result`` as one JSON line (floats to 4 decimals), also written to ``out`` when given."""
    line = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
