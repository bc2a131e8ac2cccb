"""After a --multirun sweep: summary.csv and summary.md in the sweep dir, one row per job, best first."""

from __future__ import annotations

import csv
import json
import logging
import re
import statistics
from pathlib import Path
from typing import Any, Mapping

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seglight.model.metrics import FINAL_MONITOR
from seglight.report.bootstrap import bootstrap, run_blocks
from seglight.report.confusions import VAL_CONFUSIONS, load_confusions
from seglight.report.figures import cost_figure, save_figure
from seglight.report.tables import val_caveat

log = logging.getLogger(__name__)
FAILED = "(failed)"  # a job's best_ckpt in the summary when it wrote no metrics.json

COLUMNS = [
    "job",
    "overrides",
    "val/mIoU",
    "val/mIoU_ci",
    FINAL_MONITOR,
    "val/dice",
    "val/acc",
    "fit_minutes",
    "val_img_per_s",
    "best_ckpt",
    "run_dir",
    "val_caveat",
    "purge_frames",
]
SHOWN = COLUMNS[1:9]  # the columns of summary.md (a val_caveat is written beside the job's val/mIoU)
AGREE = 1e-4  # a job's val_confusions.npz must give its metrics.json val/mIoU to this: else it is stale


def miou_interval(job_dir: Path, miou: float | None) -> str | None:
    """``"[low, high]"``: the 95% bootstrap interval of the job's val mIoU over its val images (or blocks of frames:
    ``run_blocks``), from the per-image confusion matrices of its final validation (``val_confusions.npz``); None
    if it has none, or if they do not give its val/mIoU (a file left from another run)."""
    path = job_dir / VAL_CONFUSIONS
    if miou is None or not path.is_file():
        return None
    images, confusions, _ = load_confusions(path)
    if len(confusions) == 0:
        return None
    result = bootstrap(confusions, blocks=run_blocks(job_dir, images))
    if abs(float(result["mIoU"]) - miou) > AGREE:
        log.warning("%s gives val/mIoU %.4f, metrics.json %.4f: no interval", path, result["mIoU"], miou)
        return None
    low, high = result["mIoU_ci"]
    return f"[{low:.3f}, {high:.3f}]"


def collect(sweep_dir: str | Path, states: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per job dir holding metrics.json, best first by ``ranking_score``; failed jobs last. ``states``
    ({job: state}, a search's trials) adds a ``state`` to each row."""
    rows = []
    for overrides_file in sorted(Path(sweep_dir).glob("*/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        metrics_file = job_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        rows.append(
            {
                "job": job_dir.name,
                "overrides": " ".join(overrides),
                "val/mIoU": metrics.get("val/mIoU"),
                "val/mIoU_ci": miou_interval(job_dir, metrics.get("val/mIoU")),
                FINAL_MONITOR: metrics.get(FINAL_MONITOR),  # last.ckpt: no selection
                "val/dice": metrics.get("val/dice"),
                "val/acc": metrics.get("val/acc"),
                "fit_minutes": metrics.get("fit_minutes"),
                "val_img_per_s": metrics.get("val_img_per_s"),
                "best_ckpt": metrics.get("best_ckpt", FAILED),
                "run_dir": str(job_dir),
                "val_caveat": val_caveat(metrics),
                "purge_frames": metrics.get("purge_frames"),  # what the run trained with (a resumed run: its start's)
            }
        )
        if states is not None:
            rows[-1]["state"] = states.get(job_dir.name, "-")
    return sorted(rows, key=lambda r: (ranking_score(r) is None, -(ranking_score(r) or 0.0)))


def ranking_score(row: Mapping[str, Any]) -> float | None:
    """What a job is ranked by: its final weights' val/mIoU (what a search maximises), best.ckpt's where the
    final weights were not scored. best.ckpt is the best of the job's validations on the same images."""
    return row[FINAL_MONITOR] if row.get(FINAL_MONITOR) is not None else row["val/mIoU"]


FOLD = re.compile(r"(^|\s)\+{0,2}data\.fold=(\S+)")  # data.fold=, +data.fold=, ++data.fold=
FOLDS = re.compile(r"(^|\s)\+{0,2}data\.folds=(\d+)")


def fold_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs that differ only in ``data.fold`` -> one row per recipe and ``data.purge_frames`` (from the job's
    metrics.json; None for runs from before it was recorded there): its overrides without the fold, the number
    of folds scored, and the mean, standard deviation (n-1), min and max of their scores; best mean first.

    A fold's score is its final weights' (``final_weights_val/mIoU``): best.ckpt is chosen on the fold's own
    held-out images, so its score carries that selection. Runs that recorded no final score (older ones) give
    best.ckpt's, counted in ``selected``. Fold jobs that wrote no metrics.json (failed or still running) are counted
    in ``failed``: the mean leaves them out."""
    recipes: dict[tuple[str, Any], list[float]] = {}
    scored_folds: dict[tuple[str, Any], list[str]] = {}
    failed: dict[str, int] = {}
    caveats: dict[tuple[str, Any], int] = {}
    selected: dict[tuple[str, Any], int] = {}
    for r in rows:
        if not (fold := FOLD.search(r["overrides"])):
            continue
        recipe = " ".join(FOLD.sub(" ", r["overrides"]).split())
        if r["val/mIoU"] is None and r["best_ckpt"] == FAILED:
            failed[recipe] = failed.get(recipe, 0) + 1
        elif r["val/mIoU"] is not None:
            key = (recipe, r.get("purge_frames"))
            final = r.get(FINAL_MONITOR)
            recipes.setdefault(key, []).append(float(r["val/mIoU"] if final is None else final))
            scored_folds.setdefault(key, []).append(fold.group(2))
            caveats[key] = caveats.get(key, 0) + bool(r.get("val_caveat"))
            selected[key] = selected.get(key, 0) + (final is None)
    out = [
        {
            "recipe": k[0],
            "purge_frames": k[1],
            "folds": len(v),
            "not_held_out": caveats[k],
            "selected": selected[k],
            "failed": 0,
            "mean": statistics.fmean(v),
            "std": statistics.stdev(v) if len(v) > 1 else None,  # one fold: no spread to tell
            "min": min(v),
            "max": max(v),
            "incomplete": incomplete(k[0], scored_folds[k]),
        }
        for k, v in recipes.items()
    ]
    out.sort(key=lambda r: (r["incomplete"] is not None, -r["mean"]))  # recipes scored on all their folds first
    for recipe, n in failed.items():  # once per recipe: on its best row, or on a row of its own where none scored
        row = next((r for r in out if r["recipe"] == recipe), None)
        if row is None:
            out.append(
                dict(recipe=recipe, purge_frames=None, folds=0, not_held_out=0, selected=0, failed=n, incomplete=None)
            )
            out[-1].update(mean=None, std=None, min=None, max=None)
        else:
            row["failed"] = n
    return out


def incomplete(recipe: str, folds: list[str]) -> str | None:
    """What is wrong with the set of folds a recipe was scored on, where ``data.folds=K`` in its overrides says
    which there are (None: all K once, or K unknown): folds missing, outside 0..K-1, or scored twice. A mean over
    some folds does not compare with means over all of them: the spread between folds is larger than most
    differences between recipes."""
    match = FOLDS.search(recipe)
    if match is None:
        return None
    k = int(match.group(2))
    wanted = [str(i) for i in range(k)]
    missing = [f for f in wanted if f not in folds]
    problems = [f"fold {', '.join(missing)} missing"] if missing else []
    problems += [f"fold {f} is not one of 0..{k - 1}" for f in sorted(set(folds) - set(wanted))]
    problems += [f"fold {f} scored {folds.count(f)} times" for f in sorted(set(folds)) if folds.count(f) > 1]
    return "; ".join(problems) or None


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _fold_notes(recipe: Mapping[str, Any]) -> str:
    """After a recipe's fold count: how many of its folds scored images the model (or its start) trained on, or
    could not be checked (the start's images unknown), and how many were scored by best.ckpt."""
    notes = [f"{recipe['not_held_out']} not held out or unchecked: see val_caveat"] if recipe["not_held_out"] else []
    notes += [f"{recipe['selected']} scored by best.ckpt, chosen on the fold"] if recipe["selected"] else []
    notes += [f"{recipe['failed']} more without metrics.json (failed?): not in the mean"] if recipe["failed"] else []
    notes += [f"incomplete: {recipe['incomplete']}"] if recipe.get("incomplete") else []
    return f" ({'; '.join(notes)})" if notes else ""


def _shown(row: Mapping[str, Any], column: str) -> str:
    """A summary.md cell; a val/mIoU that is not a held-out score carries its caveat."""
    cell = _cell(row[column])
    return f"{cell} ({row['val_caveat']})" if column == "val/mIoU" and row.get("val_caveat") else cell


def write_summary(sweep_dir: str | Path, states: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Writes summary.csv and summary.md into sweep_dir (with a table of cross-validated recipes, mean +- std
    over their folds, where the sweep ran over data.fold); returns the rows. ``states``: see ``collect``."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir, states)
    columns, shown = (COLUMNS, SHOWN) if states is None else (["job", "state", *COLUMNS[1:]], ["state", *SHOWN])
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| rank | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    lines += [f"| {i + 1} | " + " | ".join(_shown(r, c) for c in shown) + " |" for i, r in enumerate(rows)]
    folds = fold_summary(rows)
    if folds:
        lines += [
            "",
            "Cross-validation: the final weights' val/mIoU over the folds of each recipe (purge: data.purge_frames)",
            "",
            "| recipe | purge | folds | mean +- std | min | max |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f['recipe'] or '(defaults)'} | {_cell(f['purge_frames'])} | {f['folds']}{_fold_notes(f)} | "
            f"{_cell(f['mean'])} +- {_cell(f['std'])} | {_cell(f['min'])} | {_cell(f['max'])} |"
            for f in folds
        ]
    if any(r.get("fit_minutes") is not None and r["val/mIoU"] is not None for r in rows):
        save_figure(cost_figure(rows), sweep_dir / "summary.png")
        lines += ["", "![val mIoU against training time and prediction speed](summary.png)"]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return rows


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, summarises its jobs (see write_summary)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = write_summary(sweep_dir)
        log.info("sweep summary (%d jobs): %s", len(rows), sweep_dir / "summary.csv")
        if rows:
            print((sweep_dir / "summary.md").read_text())
