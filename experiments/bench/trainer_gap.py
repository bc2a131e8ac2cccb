"""Where the time goes between the bare model step and ``trainer.fit``: the Trainer with one thing changed at a time.

Every variant trains the default model on the bench's data (``run.train_config``: CamVid, 256x256 crops, batch 8,
the precision and memory format ``precision=auto`` picks) and is timed like ``run.py`` (warm-up steps, then the
images/s of the next steps); variants take turns, ``--repeats`` times, and the medians are compared with the bare
step (the module's forward, loss, backward and optimizer step on one batch held in memory).

    python experiments/bench/trainer_gap.py [--repeats 3] [--out FILE]

``--profile VARIANT --steps N`` runs one variant alone for N steps, for a sampling profiler:
``py-spy record --subprocesses --format raw -o stacks.txt -- python experiments/bench/trainer_gap.py --profile
default --steps 40``; ``--summarise stacks.txt`` then splits the samples into forward, backward, optimizer,
loss, metrics, logging and waiting for data inside the training loop, the DataLoader worker processes, and the
samples outside the loop (start-up, teardown).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import bare_step, cpu_name, emit, plain_loop, prepared_datamodule, train_config, trainer_loop  # noqa: E402

# name -> overrides of the default config
VARIANTS = {
    "default": [],
    "train metrics off": ["model.train_metrics_every_n_steps=0"],
    "cache_images": ["data.cache_images=true"],
    "num_workers=0": ["data.num_workers=0"],
    "num_workers=0 + cache_images": ["data.num_workers=0", "data.cache_images=true"],
}
# py-spy frames (function names, file paths) -> bucket, for samples inside Lightning's training-epoch loop; the
# first bucket whose key a stack contains wins. Lightning runs training_step and backward inside the optimizer's
# closure, so the optimizer's own work is matched by torch's AdamW frames, after the step's parts.
STEP_BUCKETS = [
    ("backward", ("run_backward", "backward (torch/")),
    ("metrics", ("metrics.py", "_check_finite")),
    ("loss", ("losses.py",)),
    ("logging", ("logger_connector", "result.py", "csv_logs", "log_metrics")),
    ("forward", ("training_step",)),
    ("optimizer", ("adamw.py", "_multi_tensor_adam", "_single_tensor_adam", "zero_grad")),
    ("waiting for data", ("fetcher", "dataloader.py", "collate")),
]


def bucket(stack: str) -> str:
    """The bucket of one py-spy stack (frames joined by ';')."""
    if "_worker_loop" in stack:
        return "DataLoader workers"
    if "training_epoch_loop" not in stack:
        return "outside the training loop"
    return next((name for name, keys in STEP_BUCKETS if any(k in stack for k in keys)), "other in the loop")


def config(work: Path, variant: str):
    """The bench's training config with the variant's overrides; caches in ``work``, not beside the data."""
    return train_config(work, *VARIANTS[variant], f"data.cache_dir={work / 'cache'}")


def measure(repeats: int, warmup: int, steps: int, work: Path) -> dict[str, dict]:
    configs = {name: config(work, name) for name in VARIANTS}
    modules = {name: prepared_datamodule(cfg) for name, cfg in configs.items()}
    base_cfg, base_dm = configs["default"], modules["default"]
    rates: dict[str, list[float]] = {"bare step": [], "plain loop (same DataLoader)": []} | {k: [] for k in VARIANTS}
    names = list(rates)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # each repeat starts one later
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
    print(f"{'variant':36s} {'img/s':>7s} {'min-max':>13s} {'/ bare step':>11s}   (medians of {repeats})")
    for name, v in medians.items():
        print(f"{name:36s} {v:7.2f} {min(rates[name]):6.2f}-{max(rates[name]):<6.2f} {v / bare:11.3f}")
    return {"median": medians, "runs": rates}


def summarise(path: Path) -> dict[str, float]:
    """Shares of the samples in a py-spy ``--format raw`` file (one line per stack: frames;...;frames count)."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        counts[bucket(stack)] += int(n)
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
                cfg = config(Path(tmp), args.profile)
                rate = trainer_loop(cfg, prepared_datamodule(cfg), args.warmup, args.steps)
                result = {"variant": args.profile, "img_s": rate}
            else:
                result = {"cpu": cpu_name(), "img_s": measure(args.repeats, args.warmup, args.steps, Path(tmp))}
    emit(result, args.out)


if __name__ == "__main__":
    main()
