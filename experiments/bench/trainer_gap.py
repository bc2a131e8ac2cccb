"""Where the time goes between the bare model step and ``trainer.fit``: the Trainer with one thing changed at a time.

Every variant trains the default model on the bench's data (``run.train_config``: CamVid, 256x256 crops, batch 8,
the precision and memory format ``precision=auto`` picks) and is timed like ``run.py`` (warm-up steps, then the
images/s of the next steps); variants take turns, ``--repeats`` times, and the medians are compared with the bare
step (the module's forward, loss, backward and optimizer step on one batch held in memory).

    python experiments/bench/trainer_gap.py [--repeats 3] [--out FILE]

``--profile VARIANT --steps N`` runs one variant alone for N steps, for a sampling profiler:
``py-spy record --subprocesses --format raw -o stacks.txt -- python experiments/bench/trainer_gap.py --profile
default --steps 40``; ``--summarise stacks.txt`` then splits the samples into forward, backward, optimizer,
loss, metrics, logging, data loading (the DataLoader worker processes) and the rest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).parent))
from run import bare_step, cpu_name, emit, plain_loop, train_config, trainer_loop  # noqa: E402

# name -> overrides of the default config
VARIANTS = {
    "default": [],
    "train metrics off": ["model.train_metrics_every_n_steps=0"],
    "cache_images": ["data.cache_images=true"],
    "num_workers=0": ["data.num_workers=0"],
    "num_workers=0 + cache_images": ["data.num_workers=0", "data.cache_images=true"],
}
# py-spy frames (function names, file paths) -> bucket; the first bucket whose key a stack contains wins
BUCKETS = [
    ("data loading", ("_worker_loop",)),
    ("backward", ("run_backward", "backward (torch/")),
    ("optimizer", ("optimizer_step", "adamw.py", "_multi_tensor_adam", "_single_tensor_adam")),
    ("metrics", ("metrics.py",)),
    ("loss", ("losses.py",)),
    ("forward", ("training_step",)),
    ("logging", ("logger_connector", "result.py", "csv_logs", "log_metrics")),
    ("data loading", ("fetcher", "dataloader.py", "collate")),
]


def datamodule(cfg):
    dm = instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    return dm


def measure(repeats: int, warmup: int, steps: int, work: Path) -> dict[str, float]:
    cache = f"data.cache_dir={work / 'cache'}"  # statistics and decoded images in the temporary folder
    configs = {name: train_config(work, *extra, cache) for name, extra in VARIANTS.items()}
    modules = {name: datamodule(cfg) for name, cfg in configs.items()}
    for dm in modules.values():  # fill the image cache before timing: the steady state is what is compared
        if dm.cache_images:
            train = dm.datasets["train"]
            for i in range(len(train)):
                train.read_image(i)
    base_cfg, base_dm = configs["default"], modules["default"]
    rates: dict[str, list[float]] = {"bare step": [], "plain loop (same DataLoader)": []} | {k: [] for k in VARIANTS}
    for r in range(repeats):
        for name in rates:
            if name == "bare step":
                rate = bare_step(base_cfg, base_dm, warmup, steps)
            elif name.startswith("plain loop"):
                rate = plain_loop(base_cfg, base_dm, warmup, steps, fast=True)
            else:
                rate = trainer_loop(configs[name], modules[name], warmup, steps)
            rates[name].append(rate)
            print(f"  repeat {r + 1}/{repeats} {name}: {rate:.2f} img/s", flush=True)
    medians = {k: statistics.median(v) for k, v in rates.items()}
    bare = medians["bare step"]
    print(f"{'variant':36s} {'img/s':>7s} {'/ bare step':>11s}   (medians of {repeats})")
    for name, v in medians.items():
        print(f"{name:36s} {v:7.2f} {v / bare:11.3f}")
    return medians


def summarise(path: Path) -> dict[str, float]:
    """Shares of the samples in a py-spy ``--format raw`` file (one line per stack: frames;...;frames count)."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        bucket = next((name for name, keys in BUCKETS if any(k in stack for k in keys)), "other")
        counts[bucket] += int(n)
    total = sum(counts.values())
    shares = {k: v / total for k, v in counts.most_common()}
    for k, v in shares.items():
        print(f"{k:14s} {v:6.1%}")
    return shares


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--profile", choices=sorted(VARIANTS), help="run this variant alone (for py-spy)")
    ap.add_argument("--summarise", type=Path, help="a py-spy raw file: print the shares of the samples")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    if args.summarise:
        result: dict[str, object] = {"shares": summarise(args.summarise)}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            if args.profile:
                cfg = train_config(Path(tmp), *VARIANTS[args.profile])
                rate = trainer_loop(cfg, datamodule(cfg), args.warmup, args.steps)
                result = {"variant": args.profile, "img_s": rate}
            else:
                result = {"cpu": cpu_name(), "img_s": measure(args.repeats, args.warmup, args.steps, Path(tmp))}
    emit(result, args.out)


if __name__ == "__main__":
    main()
