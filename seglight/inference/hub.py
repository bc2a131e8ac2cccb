"""Hub-style export (``export format=hf``): smp's ``save_pretrained`` folder, seglight's metadata and a model card
(README.md) that says what the model segments, how to feed it, how good it is and how it was trained.

``seglight.predict ckpt=<folder>`` and ``smp.from_pretrained(<folder>)`` both load the folder;
``push_to_hub=<user>/<repo>`` uploads it when the Hub can be reached.
"""

from __future__ import annotations

import filecmp
import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from seglight.model.module import SegmentationModule
from seglight.report.bootstrap import bootstrap, run_blocks
from seglight.report.confusions import VAL_CONFUSIONS, load_confusions
from seglight.report.html import hex_color, render
from seglight.report.tables import selected_above_final, val_caveat
from seglight.util.network import reachable

HUB_HOST = "huggingface.co"


def run_record(ckpt: Path) -> dict[str, Any]:
    """What the checkpoint's run dir (``<run>/checkpoints/x.ckpt``) recorded: its training command (Hydra's
    overrides), and where ``ckpt`` is the run's best checkpoint its val metrics (metrics.json) and their
    intervals (val_confusions.npz); empty where absent."""
    run = ckpt.resolve().parent.parent
    record: dict[str, Any] = {"run_dir": str(run)}
    overrides = run / ".hydra" / "overrides.yaml"
    if overrides.exists():
        args = yaml.safe_load(overrides.read_text()) or []
        record["command"] = shlex.join(["python", "-m", "seglight.train", *map(str, args)])
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    if not holds_best_weights(ckpt, run, metrics):
        return record  # the run's metrics describe its best checkpoint, not this one
    record["metrics"] = metrics
    if (run / VAL_CONFUSIONS).exists():
        images, confusions, names = load_confusions(run / VAL_CONFUSIONS)
        blocks = run_blocks(run, images)
        stats = bootstrap(confusions, blocks=blocks)
        record["val_images"] = len(images)
        record["val_blocks"] = len(set(blocks)) if blocks else None
        record["mIoU_ci"] = [float(v) for v in stats["mIoU_ci"]]
        record["iou_ci"] = {n: [float(v) for v in stats["iou_ci"][k]] for k, n in enumerate(names)}
    return record


def holds_best_weights(ckpt: Path, run: Path, metrics: dict[str, Any]) -> bool:
    """Whether ``ckpt`` is the checkpoint that the run's metrics.json describes (``best_ckpt``): that file, the
    file of that name in ``run`` (a run dir moved or copied since), or a copy of either under another name, byte
    for byte. The name alone is not enough: best.ckpt is rewritten as a run improves."""
    if not metrics.get("best_ckpt"):
        return False
    recorded = Path(metrics["best_ckpt"])
    files = {f.resolve() for f in (recorded, run / "checkpoints" / recorded.name) if f.is_file()}  # often one file
    return ckpt.resolve() in files or any(filecmp.cmp(f, ckpt, shallow=False) for f in files)


def card_context(module: SegmentationModule, info: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The model card's values: classes with colours and val IoU (with interval where recorded), data, command."""
    metrics = record.get("metrics", {})
    classes = [
        {
            "name": name,
            "color": hex_color(info["colors"][k]),
            "iou": metrics.get(f"val/iou/{name}"),
            "iou_ci": record.get("iou_ci", {}).get(name),
        }
        for k, name in enumerate(info["class_names"])
    ]
    split = module.data_split or {}
    data = split.get("data", {})
    files = split.get("files", {})
    return {
        "info": info,
        "classes": classes,
        "miou": metrics.get("val/mIoU"),
        "final_miou": selected_above_final(metrics),
        "miou_ci": record.get("mIoU_ci"),
        "val_caveat": val_caveat(metrics),
        "val_images": record.get("val_images"),
        "val_blocks": record.get("val_blocks"),
        "data": {
            k: data.get(k)
            for k in ("root", "images", "masks", "val_images", "folds", "fold")
            if data.get(k) or (k == "fold" and data.get("folds"))
        },
        "split_sizes": {k: len(v) for k, v in files.items() if v},
        "command": record.get("command"),
        "run_dir": record.get("run_dir"),
    }


def export_hf(module: SegmentationModule, folder: Path, ckpt: Path, info: dict[str, Any]) -> Path:
    """Writes the model card README.md into ``folder`` (which already holds smp's files and seglight.json)."""
    context = card_context(module, info, run_record(ckpt))
    return render("model_card.md.j2", folder / "README.md", **context)


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Uploads ``folder`` to the Hub model repo ``repo_id`` (created private if missing); returns its URL.
    Offline, raises ConnectionError saying the folder is ready and how to upload it later."""
    if not reachable(HUB_HOST):
        raise ConnectionError(
            f"{HUB_HOST} cannot be reached: {folder} is complete; upload it later with "
            f"`huggingface-cli upload {repo_id} {folder}` (after `huggingface-cli login`)"
        )
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, private=True)  # the card names local paths: public is a choice
    api.upload_folder(repo_id=repo_id, folder_path=str(folder))
    return f"https://{HUB_HOST}/{repo_id}"
