"""compare: runs scored on the same images -> compare.json, compare.md and compare.png: each run against the
first (the baseline), B - A with a paired bootstrap interval over the images they share (or over blocks of their
video frames: ``bootstrap.resampling_blocks``).

A run is an evaluate output (its ``confusions.npz``), a training run dir (its ``checkpoints/best.ckpt``,
evaluated first) or a .ckpt / .onnx file (evaluated first, into ``<output>/runs/<name>``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seglight.inference.evaluation import evaluate_checkpoint
from seglight.model.metrics import MONITOR
from seglight.report.bootstrap import (
    LEVEL,
    bootstrap,
    paired_difference,
    resampling_blocks,
    run_frame_pattern,
    scores,
)
from seglight.report.compare_figures import difference_figure
from seglight.report.confusions import CONFUSIONS, VAL_CONFUSIONS, load_confusions
from seglight.report.figures import save_figure
from seglight.report.tables import chosen_caveat, score_text, val_caveat
from seglight.util.files import atomic_write, write_json

log = logging.getLogger(__name__)

BEST = Path("checkpoints") / "best.ckpt"  # a training run's model
MODELS = (".ckpt", ".onnx")


@dataclass
class Scored:
    """One run's per-image confusion matrices: ``confusions`` (N,C,C) counts of ``images`` (N,)."""

    run: str  # as given
    name: str  # a short label (``run_names``)
    images: list[str]
    confusions: np.ndarray
    class_names: list[str]
    caveat: str | None = None  # why its scores are not held out (``val_caveat`` of its metrics.json)


def run_names(runs: Sequence[str]) -> list[str]:
    """Short labels that tell the runs apart: the fewest trailing path parts (a training run dir for its
    checkpoints/best.ckpt); a run given twice gets ``#2``."""
    parts = []
    for run in runs:
        path = Path(run).resolve()
        if path.name == BEST.name and path.parent.name == BEST.parent.name:
            path = path.parent.parent
        parts.append(path.parts[1:] or path.parts)
    names = ["/".join(p) for p in parts]
    for k in range(1, max(len(p) for p in parts) + 1):
        short = ["/".join(p[-k:]) for p in parts]
        if len(set(short)) == len(set(names)):
            names = short
            break
    return [n if n not in names[:i] else f"{n}#{names[:i].count(n) + 1}" for i, n in enumerate(names)]


def confusions_file(run: str, name: str, output: Path, data: dict[str, Any], split: str, **predictor: Any) -> Path:
    """The confusions.npz of ``run``: an evaluate output's own, else that of evaluating its model on ``split``
    of ``data`` into ``output/runs/<name>``."""
    path = Path(run)
    if (path / CONFUSIONS).is_file():
        return path / CONFUSIONS
    if path.is_file() and path.suffix == ".npz":
        return path
    model = path / BEST if path.is_dir() else path
    if not (model.is_file() and model.suffix in MODELS):
        stale = path.is_dir() and (path / "metrics.json").is_file() and not (path / BEST).parent.is_dir()
        raise ValueError(
            f"{run}: not an evaluate output (holding {CONFUSIONS}), a training run dir (holding {BEST}) or a "
            ".ckpt / .onnx file" + (f"; an evaluate output without {CONFUSIONS}: evaluate it again" if stale else "")
        )
    dest = output / "runs" / name.replace("/", "__")
    print(f"{name}: evaluating {model} on the {split} split -> {dest}")
    evaluate_checkpoint(model, data, split, dest, **predictor)
    return dest / CONFUSIONS


def confusions_metrics(confusions: Path | None) -> dict[str, Any]:
    """The metrics.json beside an evaluate output's or a training run's confusions ({} where there is none)."""
    metrics = confusions.parent / "metrics.json" if confusions is not None else None
    return json.loads(metrics.read_text()) if metrics is not None and metrics.is_file() else {}


def run_caveat(confusions: Path) -> str | None:
    """Why a run's scores are not held out (``val_caveat``), from the metrics.json beside its confusions: an
    evaluate output's (``confusions.npz``) or a training run's (``val_confusions.npz``); none for other files."""
    if confusions.name not in (CONFUSIONS, VAL_CONFUSIONS) or not (confusions.parent / "metrics.json").is_file():
        return None
    recorded = confusions_metrics(confusions)
    if confusions.name == CONFUSIONS and "train_on_val" not in recorded:  # evaluated before it was recorded
        return val_caveat(recorded) or "held-out unchecked (evaluated before 2026-11-27)"
    if confusions.name == VAL_CONFUSIONS and recorded.get("best_ckpt"):  # the run's best.ckpt on its own val
        return val_caveat(recorded) or chosen_caveat(MONITOR)
    return val_caveat(recorded)


def paired(scored: Sequence[Scored]) -> tuple[list[str], list[np.ndarray]]:
    """The images every run scored, in the baseline's order, and each run's (N,C,C) matrices of them.
    Errors name the runs when the classes differ or no image is shared; a warning gives the counts when the
    runs scored different images."""
    base = scored[0]
    keys = [[os.path.normpath(image) for image in s.images] for s in scored]  # a/../data/x and b/../data/x: one
    for s, k in zip(scored, keys):
        if s.class_names != base.class_names:
            raise ValueError(f"{base.run} and {s.run} have different classes: {base.class_names} vs {s.class_names}")
        if len(set(k)) != len(k):
            raise ValueError(f"{s.run}: an image is scored twice")
    shared = set(keys[0]).intersection(*keys[1:])
    counts = ", ".join(f"{s.name} {len(s.images)}" for s in scored)
    if not shared:
        examples = "; ".join(f"{s.run}: {s.images[0] if s.images else '(none)'}" for s in scored)
        raise ValueError(f"the runs share no image (images: {counts}); e.g. {examples}")
    images = [i for i in keys[0] if i in shared]
    if any(len(s.images) != len(images) for s in scored):
        log.warning("the runs scored different images (%s): comparing the %d they all share", counts, len(images))
    stacks = []
    for s, k in zip(scored, keys):
        row = {image: n for n, image in enumerate(k)}
        stacks.append(s.confusions[[row[i] for i in images]])
    return images, stacks


def compare(
    scored: Sequence[Scored], seed: int = 0, frame_pattern: str | None = None, block_frames: int | str | None = None
) -> dict[str, Any]:
    """Each run after the first against the first (B - A) on the images they share: their mIoU with its
    interval, the mIoU difference and the per-class IoU differences with paired intervals (``LEVEL``), drawing
    images or blocks of frames (``bootstrap.resampling_blocks``: ``blocks``, null for images)."""
    if len(scored) < 2:
        raise ValueError(f"compare needs two runs or more, got {len(scored)}: runs=[A,B,...]")
    images, stacks = paired(scored)
    names = scored[0].class_names
    blocks = resampling_blocks(images, frame_pattern, block_frames)
    base = bootstrap(stacks[0], seed=seed, blocks=blocks)
    out: dict[str, Any] = {
        "baseline": scored[0].run,
        "baseline_name": scored[0].name,
        "baseline_mIoU": float(base["mIoU"]),
        "baseline_mIoU_ci": _pair(base["mIoU_ci"]),
        "baseline_iou": _by_class(base["iou"], names),
        "baseline_caveat": scored[0].caveat,
        "class_names": names,
        "images": len(images),
        "blocks": len(set(blocks)) if blocks else None,
        "level": LEVEL,
        "runs": [],
    }
    for s, conf in zip(scored[1:], stacks[1:]):
        own = bootstrap(conf, seed=seed, blocks=blocks)
        diff = paired_difference(stacks[0], conf, seed=seed, blocks=blocks)
        out["runs"].append(
            {
                "run": s.run,
                "name": s.name,
                "mIoU": float(own["mIoU"]),
                "mIoU_ci": _pair(own["mIoU_ci"]),
                "iou": _by_class(scores(conf.sum(0))["iou"], names),
                "mIoU_diff": float(diff["mIoU_diff"]),
                "mIoU_diff_ci": _pair(diff["mIoU_diff_ci"]),
                "iou_diff": _by_class(diff["iou_diff"], names),
                "iou_diff_ci": {c: _pair(ci) for c, ci in zip(names, diff["iou_diff_ci"])},
                "caveat": s.caveat,
            }
        )
    return out


def _pair(ci: np.ndarray) -> list[float]:
    return [float(ci[0]), float(ci[1])]


def _by_class(values: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    return {c: float(v) for c, v in zip(names, values)}


def verdict(b: str, a: str, diff: float, ci: Sequence[float], level: float = LEVEL) -> str:
    """``B - A = +0.021 mIoU, 95% CI [+0.008, +0.034] (better)``: better or worse when the interval lies
    above or below 0, else no clear difference."""
    low, high = ci
    if low is None or high is None or np.isnan(low) or np.isnan(high):  # too few blocks of frames to draw from
        return f"{b} - {a} = {diff:+.3f} mIoU, no interval (too few blocks of frames to draw from)"
    if low > 0:
        word = "better"
    elif high < 0:
        word = "worse"
    else:
        word = "no clear difference: the interval holds 0"
    return f"{b} - {a} = {diff:+.3f} mIoU, {level:.0%} CI [{low:+.3f}, {high:+.3f}] ({word})"


def caveats(result: dict[str, Any], run: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, why) for the baseline and ``run`` where their scores are not held out."""
    named = ((result["baseline_name"], result.get("baseline_caveat")), (run["name"], run.get("caveat")))
    return [(n, c) for n, c in named if c]


def markdown(result: dict[str, Any]) -> str:
    """compare.md: per compared run its verdict line and a per-class table of both IoUs and the difference."""
    a, level = result["baseline_name"], result["level"]
    lines = [f"# {len(result['runs']) + 1} runs on {result['images']} shared images; baseline {a}", ""]
    if result.get("blocks"):  # neighbouring frames are nearly the same picture: whole blocks are drawn
        lines += [f"Intervals: paired bootstrap over {result['blocks']} blocks of neighbouring frames.", ""]
    for r in result["runs"]:
        b = r["name"]
        lines += [verdict(b, a, r["mIoU_diff"], r["mIoU_diff_ci"], level), ""]
        notes = [f"{n}: not held out: {c}" for n, c in caveats(result, r)]
        lines += [*notes, ""] if notes else []
        lines += [f"| class | {a} IoU | {b} IoU | diff | {level:.0%} CI |", "|---|---|---|---|---|"]
        rows = [(c, result["baseline_iou"][c], r["iou"][c], r["iou_diff"][c], r["iou_diff_ci"][c]) for c in r["iou"]]
        rows.append(("**mIoU**", result["baseline_mIoU"], r["mIoU"], r["mIoU_diff"], r["mIoU_diff_ci"]))
        for c, ia, ib, d, (low, high) in rows:
            interval = "-" if np.isnan(low) else f"[{low:+.3f}, {high:+.3f}]"
            diff = "-" if np.isnan(d) else f"{d:+.3f}"
            lines.append(f"| {c} | {score_text(ia, 3)} | {score_text(ib, 3)} | {diff} | {interval} |")
        lines.append("")
    return "\n".join(lines)


def compare_runs(
    runs: Sequence[str],
    data: dict[str, Any],
    split: str,
    output: str | Path,
    seed: int = 0,
    block_frames: int | str | None = "auto",
    **predictor: Any,
) -> dict[str, Any]:
    """``compare`` of ``runs`` (evaluated first where they are models, on ``split`` of the data config ``data``
    with ``predictor`` options); bootstrap draws from ``seed``. Writes compare.json, compare.md, compare.png
    into ``output`` and returns what compare.json holds (NaN there as null)."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    scored, first = [], None
    for run, name in zip(runs, run_names(runs)):
        path = confusions_file(run, name, output, data, split, block_frames=block_frames, **predictor)
        images, confusions, classes = load_confusions(path)
        scored.append(Scored(run, name, images, confusions, classes, run_caveat(path)))
        first = first or path
    pattern = data.get("frame_pattern")
    if pattern is None and block_frames == "auto":  # evaluate outputs record the blocks their intervals drew
        recorded = confusions_metrics(first)
        pattern, block_frames = recorded.get("frame_pattern"), recorded.get("block_frames") or block_frames
        if pattern is None and first is not None and first.name == VAL_CONFUSIONS:  # a training run's confusions:
            pattern = run_frame_pattern(first.parent)  # its config.yaml names the frames
    result = compare(scored, seed, pattern, block_frames)
    write_json(output / "compare.json", result)
    text = markdown(result)
    atomic_write(output / "compare.md", lambda f: f.write(text.encode()))
    labels = ["mIoU", *result["class_names"]]
    diffs = [[r["mIoU_diff"], *r["iou_diff"].values()] for r in result["runs"]]
    intervals = [[r["mIoU_diff_ci"], *r["iou_diff_ci"].values()] for r in result["runs"]]
    legend = [f"{r['name']} - {result['baseline_name']}" for r in result["runs"]]
    unit = f"over {result['blocks']} blocks of frames" if result.get("blocks") else "over images"
    title = f"{result['images']} images, paired bootstrap {unit}"
    save_figure(difference_figure(labels, legend, np.array(diffs), np.array(intervals), title), output / "compare.png")
    for r in result["runs"]:
        print(verdict(r["name"], result["baseline_name"], r["mIoU_diff"], r["mIoU_diff_ci"], result["level"]))
        for n, c in caveats(result, r):
            log.warning("%s: not held out: %s", n, c)
    print(f"-> {output / 'compare.md'}")
    return result
