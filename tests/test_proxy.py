"""The honest proxy for unseen data: grouped cross-validation folds, and the EMA of the weights."""

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_config
from helpers import resume_with_ema
from hydra.utils import instantiate
from PIL import Image

from seglight.data.datamodule import SegDataModule
from seglight.data.io import DataError
from seglight.data.splits import assign_folds, file_group
from seglight.model.checkpoint import load_checkpoint
from seglight.training.callbacks import EMA, RAW_KEY
from seglight.training.fit import build_module, build_trainer

CAMVID_LIKE = (
    [f"0016E5_{f:05d}" for f in range(0, 9000, 300)]
    + [f"0006R0_f{f:05d}" for f in range(930, 3930, 300)]
    + [f"0001TP_{f:06d}" for f in range(6690, 8520, 300)]
)
SEQUENCE_AND_BLOCK = r"^([^_]+)_f?(\d+)\d{3}$"  # CamVid: the sequence and the frame number // 1000


def test_file_group_reads_the_pattern_captures():
    assert file_group("0016E5_07959", SEQUENCE_AND_BLOCK) == "0016E5_07"
    assert file_group("0006R0_f02130", SEQUENCE_AND_BLOCK) == "0006R0_02"
    assert file_group("0016E5_07959", r"^[^_]+") == "0016E5"  # no capture: the whole match
    assert file_group("img_3", None) == "img_3"
    with pytest.raises(DataError, match="does not match the file name 'x'"):
        file_group("x", SEQUENCE_AND_BLOCK)


@pytest.mark.parametrize("pattern, folds", [(SEQUENCE_AND_BLOCK, 4), (r"^([^_]+)_", 3), (None, 5)])
def test_folds_keep_groups_whole_cover_every_file_once_and_balance(pattern, folds):
    assignment = assign_folds(CAMVID_LIKE, folds, pattern, seed=0)
    assert sorted(set(assignment)) == list(range(folds)) and len(assignment) == len(CAMVID_LIKE)
    by_group: dict[str, set[int]] = {}
    for stem, k in zip(CAMVID_LIKE, assignment):
        by_group.setdefault(file_group(stem, pattern), set()).add(k)
    assert all(len(ks) == 1 for ks in by_group.values())  # a group never straddles two folds
    sizes = np.bincount(assignment)
    largest_group = max(sum(1 for s in CAMVID_LIKE if file_group(s, pattern) == g) for g in by_group)
    assert sizes.max() - sizes.min() <= largest_group  # greedy balance: off by at most one group
    assert assign_folds(CAMVID_LIKE, folds, pattern, seed=0) == assignment  # reproducible


def test_too_few_groups_for_the_folds_is_an_error():
    with pytest.raises(DataError, match="3 groups .* cannot fill data.folds=4"):
        assign_folds(CAMVID_LIKE, 4, r"^([^_]+)_")


def test_purge_options_differ_only_where_they_act():
    """An old checkpoint (no purge keys) against a config that purges: a difference for folds and hold-outs, none
    for a split by val folders, which nothing purges (evaluate would warn about it for every old run)."""
    from seglight.data.splits import data_differences

    folders = {"images": "a", "val_images": "b", "folds": 0}
    purging = {"purge_frames": 60, "frame_pattern": FRAME}
    assert data_differences(folders, {**folders, **purging}) == ([], [])
    folds = {**folders, "folds": 4}
    assert data_differences(folds, {**folds, **purging}) == ([], ["frame_pattern", "purge_frames"])
    held_out = {"images": "a", "val_images": None}
    assert data_differences(held_out, {**held_out, **purging}) == ([], ["frame_pattern", "purge_frames"])


def test_a_fold_without_folds_is_refused(tmp_path):
    """data.fold=i without data.folds=K > 1 scored the same split in every job: a sweep over data.fold then showed
    one split's runs as a cross-validation mean +- spread."""
    images, masks = _write(tmp_path, ["a_1", "b_1", "c_1"])
    with pytest.raises(ValueError, match=r"data.fold=2 needs data.folds"):
        SegDataModule(str(images), str(masks), num_classes=2, folds=0, fold=2)


def _write(root: Path, stems: list[str]) -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for stem in stems:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / f"{stem}.png")
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(masks / f"{stem}.png")
    return images, masks


FRAME = r"^([^_]+)_f?(\d+)$"  # CamVid: the sequence and the frame number


def test_purged_leaves_out_train_frames_near_a_val_frame_of_the_same_sequence():
    from seglight.data.groups import purged

    train = ["A_00030", "A_00060", "A_00090", "A_00300", "B_00120", "C_f00110"]
    assert purged(train, ["A_00120", "C_f00100"], FRAME, 30) == [True, True, False, True, True, False]
    assert purged(train, ["A_00120"], FRAME, 0) == [True] * 6
    with pytest.raises(DataError, match="does not capture"):
        purged(train, ["A_00120"], r"^([^_]+)_", 30)


@pytest.mark.parametrize("held_out", ["folds", "val_fraction"])
def test_purge_frames_keeps_neighbouring_frames_off_both_sides_of_a_fold(tmp_path, held_out):
    """Grouped by sequence and block of 1000 frames (the CamVid preset), frames a second apart sat on both sides
    of a fold at every block's edge (0016E5_07999 in train, 0016E5_08001 in val)."""
    stems = [f"0016E5_{f:05d}" for f in range(6990, 9030, 30)] + [f"0006R0_f{f:05d}" for f in range(930, 3930, 30)]
    images, masks = _write(tmp_path, stems)
    split = dict(folds=3, fold=0) if held_out == "folds" else dict(val_fraction=0.3)

    def frames(purge: int) -> tuple[list[str], list[str]]:
        dm = SegDataModule(str(images), str(masks), num_classes=2, group_pattern=SEQUENCE_AND_BLOCK,
                           frame_pattern=FRAME, purge_frames=purge, num_workers=0, **split)  # fmt: skip
        return [p.stem for p, _ in dm.split_pairs("train")], [p.stem for p, _ in dm.split_pairs("val")]

    def nearest(train: list[str], val: list[str]) -> int:
        from seglight.data.groups import frame_of

        pairs = [(frame_of(t, FRAME), frame_of(v, FRAME)) for t in train for v in val]
        return min(abs(a[1] - b[1]) for a, b in pairs if a[0] == b[0])

    train, val = frames(0)
    assert nearest(train, val) <= 30  # blocks alone: neighbours across the edge
    purged_train, purged_val = frames(60)
    assert purged_val == val and set(purged_train) < set(train)
    assert nearest(purged_train, val) > 60
    one_images, one_masks = _write(tmp_path / "one", [f"0016E5_{f:05d}" for f in range(0, 4000, 30)])  # one sequence
    dm = SegDataModule(str(one_images), str(one_masks), num_classes=2, group_pattern=SEQUENCE_AND_BLOCK,
                       frame_pattern=FRAME, purge_frames=10**6, num_workers=0, **split)  # fmt: skip
    with pytest.raises(DataError, match="leaves no training file"):
        dm.split_pairs("train")
    with pytest.raises(ValueError, match="data.purge_frames=60 needs data.frame_pattern"):
        SegDataModule(str(images), str(masks), num_classes=2, purge_frames=60, num_workers=0)


def test_datamodule_folds_pool_train_and_val_and_hold_out_one_fold(tmp_path):
    train_stems, val_stems = CAMVID_LIKE[::2], CAMVID_LIKE[1::2]
    images, masks = _write(tmp_path / "train", train_stems)
    val_images, val_masks = _write(tmp_path / "val", val_stems)
    seen = []
    for fold in range(3):
        dm = SegDataModule(
            str(images),
            str(masks),
            str(val_images),
            str(val_masks),
            num_classes=2,
            folds=3,
            fold=fold,
            group_pattern=r"^([^_]+)_",
            num_workers=0,
        )
        val = {p.stem for p, _ in dm.split_pairs("val")}
        train = {p.stem for p, _ in dm.split_pairs("train")}
        assert val and not val & train and val | train == set(CAMVID_LIKE)
        assert len({s.split("_")[0] for s in val}) == 1  # one whole sequence held out
        seen.append(val)
    assert set().union(*seen) == set(CAMVID_LIKE) and sum(map(len, seen)) == len(CAMVID_LIKE)
    with pytest.raises(ValueError, match="data.fold=3 is not one of 0..2"):
        SegDataModule(str(images), str(masks), num_classes=2, folds=3, fold=3)


def test_train_on_val_pools_both_folders_and_keeps_val_for_monitoring(tmp_path):
    train_stems, val_stems = CAMVID_LIKE[::2], CAMVID_LIKE[1::2]
    images, masks = _write(tmp_path / "train", train_stems)
    val_images, val_masks = _write(tmp_path / "val", val_stems)
    kw = dict(num_classes=2, num_workers=0)
    dm = SegDataModule(str(images), str(masks), str(val_images), str(val_masks), train_on_val=True, **kw)
    assert {p.stem for p, _ in dm.split_pairs("train")} == set(CAMVID_LIKE)
    assert {p.stem for p, _ in dm.split_pairs("val")} == set(val_stems)
    assert dm.split_files()["train"] == sorted(f"{s}.png" for s in train_stems) + sorted(f"{s}.png" for s in val_stems)
    with pytest.raises(ValueError, match="train_on_val needs val folders"):
        SegDataModule(str(images), str(masks), train_on_val=True, **kw).split_pairs("train")
    with pytest.raises(ValueError, match="cross-validation"):
        SegDataModule(str(images), str(masks), str(val_images), str(val_masks), train_on_val=True, folds=3, **kw)


@pytest.mark.parametrize(
    "name, pooled, budget",
    [("camvid", False, "00:00:42:00"), ("camvid_trainval", True, "00:00:42:00"), ("camvid_long", False, "00:02:00:00")],
)
def test_camvid_presets_compose(name, pooled, budget):
    cfg = compose_config([f"experiment={name}"])
    assert cfg.data.train_on_val is pooled and cfg.callbacks.time_budget.budget == budget
    assert cfg.model.arch.lower() == "fpn" and cfg.loss.class_weights == "auto_sqrt"  # the same recipe
    assert cfg.model.model_kwargs == {"decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32}


def test_camvid_preset_takes_another_arch_without_fpn_options():
    # the light decoder's widths belong to model=fpn_light: another model choice must not inherit them
    cfg = compose_config(["experiment=camvid", "model=linknet"])
    assert cfg.model.arch == "Linknet" and not cfg.model.model_kwargs


# ---- EMA -----------------------------------------------------------------------------------------------
class _RawWeights(pl.Callback):
    """Records the trained weights after every step, before EMA averages them (it runs first)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_fit_start(self, trainer, module) -> None:
        self.steps.append({k: v.detach().clone() for k, v in module.state_dict().items()})

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self.steps.append({k: v.detach().clone() for k, v in module.state_dict().items()})


@pytest.mark.parametrize("accumulate", [1, 2])
def test_ema_checkpoints_hold_the_average_and_the_raw_weights(train_cfg, accumulate):
    """With gradient accumulation the average moves once per optimizer step, not once per batch."""
    cfg = train_cfg(
        "trainer.max_epochs=2",
        "callbacks.ema.decay=0.5",
        f"trainer.accumulate_grad_batches={accumulate}",
        "optimizer.lr=0.05",  # steps large enough that an extra pull of the average shows
        "scheduler.warmup_steps=0",
    )
    dm = instantiate(cfg.data, _convert_="all")
    trainer = build_trainer(cfg)
    raw = _RawWeights()
    trainer.callbacks.insert(0, raw)
    module = build_module(cfg, dm)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == (len(raw.steps) - 1) // accumulate >= 2
    expected = {k: v.clone().double() for k, v in raw.steps[0].items()}
    for t, weights in enumerate(raw.steps[accumulate::accumulate], start=1):
        d = min(0.5, (1 + t) / (10 + t))  # trainer.global_step is t after the t-th optimizer step
        for k, v in weights.items():
            expected[k] = d * expected[k] + (1 - d) * v.double() if v.is_floating_point() else v.double()
    last = load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.ckpt")
    key = "model.decoder.blocks.0.conv1.0.weight"
    torch.testing.assert_close(last["state_dict"][key].double(), expected[key], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(last[RAW_KEY][key], raw.steps[-1][key])
    assert not torch.equal(last["state_dict"][key], last[RAW_KEY][key])
    torch.testing.assert_close(module.state_dict()[key].double(), expected[key], atol=1e-5, rtol=1e-4)  # kept


def test_ema_resume_trains_the_raw_weights_and_keeps_the_average(train_cfg):
    """A resumed run continues from the trained weights (its optimizer state belongs to them), not the average."""
    cfg = train_cfg("trainer.max_epochs=1", "callbacks.ema.decay=0.5")
    dm = instantiate(cfg.data, _convert_="all")
    build_trainer(cfg).fit(build_module(cfg, dm), datamodule=dm)
    last_path = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    last = load_checkpoint(last_path)
    cfg.trainer.max_epochs = 2
    trainer, ema, start = resume_with_ema(cfg, dm, last_path)
    key = "model.decoder.blocks.0.conv1.0.weight"
    assert not torch.equal(last["state_dict"][key], last[RAW_KEY][key])
    start.assert_resumed_from(last, key)
    assert trainer.global_step > last["global_step"]
    assert not torch.equal(ema.shadow[key], last["state_dict"][key])  # the average moved on from the saved one


def test_ema_off_by_default_and_bad_decay_refused(train_cfg):
    cfg = train_cfg()
    assert cfg.callbacks.ema.decay is None
    with pytest.raises(ValueError, match="callbacks.ema.decay=1.5"):
        EMA(1.5)


def test_the_sweep_summary_ranks_jobs_by_their_final_weights(tmp_path):
    """best.ckpt's score is the best of a job's validations on the same images: a noisy job ranked first by it."""
    import yaml

    from seglight.training.sweep import write_summary

    scored = {"noisy": (0.80, 0.50), "steady": (0.70, 0.70), "old": (0.60, None)}  # (best.ckpt, final weights)
    for job, (best, final) in scored.items():
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"+tag={job}"]))
        metrics = {"val/mIoU": best, "best_ckpt": "x"} | ({"final_weights_val/mIoU": final} if final else {})
        (tmp_path / job / "metrics.json").write_text(json.dumps(metrics))
    assert [r["job"] for r in write_summary(tmp_path)] == ["steady", "old", "noisy"]


def test_sweep_summary_gives_mean_and_spread_over_folds(tmp_path):
    import yaml

    from seglight.training.sweep import write_summary

    scores = {"loss=ce": [0.50, 0.60, 0.55], "loss=dice_ce": [0.58, 0.62, 0.66]}
    job = 0
    for recipe, values in scores.items():
        for fold, value in enumerate(values):
            d = tmp_path / str(job)
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([recipe, f"data.fold={fold}", "data.folds=3"]))
            metrics = {"val/mIoU": value + 0.01, "final_weights_val/mIoU": value, "best_ckpt": "x"}
            (d / "metrics.json").write_text(json.dumps(metrics))
            job += 1
    write_summary(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| loss=dice_ce data.folds=3 | - | 3 | 0.6200 +- 0.0400 | 0.5800 | 0.6600 |" in text
    assert "| loss=ce data.folds=3 | - | 3 | 0.5500 +- 0.0500 | 0.5000 | 0.6000 |" in text
    assert text.index("loss=dice_ce data.folds=3 | - | 3") < text.index("loss=ce data.folds=3 | - | 3")  # best first
    d = tmp_path / "appended"  # a fold given as +data.fold= is a fold too (and 3 is none of data.folds=3's)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["loss=ce", "+data.fold=3", "data.folds=3"]))
    (d / "metrics.json").write_text(json.dumps({"val/mIoU": 0.45, "final_weights_val/mIoU": 0.45, "best_ckpt": "x"}))
    write_summary(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| loss=ce data.folds=3 | - | 4 (incomplete: fold 3 is not one of 0..2) | " in text
    assert text.index("loss=dice_ce data.folds=3 | - | 3") < text.index("loss=ce data.folds=3 | - | 4")
    d = tmp_path / "single"  # one fold alone: a mean without a spread
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["loss=focal", "data.fold=0", "data.folds=3"]))
    (d / "metrics.json").write_text(json.dumps({"val/mIoU": 0.4, "final_weights_val/mIoU": 0.4, "best_ckpt": "x"}))
    write_summary(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    focal = "| loss=focal data.folds=3 | - | 1 (incomplete: fold 1, 2 missing) | 0.4000 +- - | 0.4000 | 0.4000 |"
    assert focal in text  # its mean is of one fold: listed after the complete recipes, whatever its mean
    assert text.index("loss=ce data.folds=3 | - | 4") < text.index(focal)
    d = tmp_path / "failed"  # a fold that wrote no metrics.json: out of the mean, and the table says so
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["loss=focal", "data.fold=1", "data.folds=3"]))
    write_summary(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert (
        "| loss=focal data.folds=3 | - | 1 (1 more without metrics.json (failed?): not in the mean; incomplete: "
        "fold 1, 2 missing) | 0.4000" in text
    )
    for fold in (
        0,
        1,
    ):  # every fold failed: a row says so; a run without val scores (limit_val_batches=0) is no failure
        d = tmp_path / f"dice{fold}"
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["loss=dice", f"data.fold={fold}", "data.folds=3"]))
    (tmp_path / "dice1" / "metrics.json").write_text(json.dumps({"best_ckpt": "", "val_images": 0}))
    write_summary(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert (
        "| loss=dice data.folds=3 | - | 0 (1 more without metrics.json (failed?): not in the mean) | - +- - |" in text
    )


def test_a_val_fraction_hold_out_keeps_groups_whole(tmp_path):
    """Without val folders, val is a val_fraction of train; with data.group_pattern it is drawn by whole groups
    (neighbouring frames of a sequence were on both sides of it); without a pattern, file by file as before."""
    from seglight.data.splits import holdout

    images, masks = _write(tmp_path / "train", CAMVID_LIKE)
    kw = dict(num_classes=2, num_workers=0, val_fraction=0.25)
    grouped = SegDataModule(str(images), str(masks), group_pattern=SEQUENCE_AND_BLOCK, **kw)
    val = [p.stem for p, _ in grouped.split_pairs("val")]
    train = [p.stem for p, _ in grouped.split_pairs("train")]
    assert sorted(val + train) == sorted(CAMVID_LIKE)
    assert not {file_group(s, SEQUENCE_AND_BLOCK) for s in val} & {file_group(s, SEQUENCE_AND_BLOCK) for s in train}
    assert 0.15 < len(val) / len(CAMVID_LIKE) < 0.35
    plain = SegDataModule(str(images), str(masks), **kw)
    val_idx, _ = holdout(len(CAMVID_LIKE), 0.25, 0)
    assert [p.stem for p, _ in plain.split_pairs("val")] == [sorted(CAMVID_LIKE)[i] for i in val_idx]
    for seed in range(20):  # one group of 95 files and one of 5: 10 % is the small one, whichever is drawn first
        val_idx, train_idx = holdout(100, 0.1, seed, ["big"] * 95 + ["small"] * 5)
        assert val_idx == list(range(95, 100)) and len(train_idx) == 95
    one_group = SegDataModule(str(images), str(masks), group_pattern=r"^(\d)", **kw)
    with pytest.raises(DataError, match="1 group"):
        one_group.split_pairs("val")


def test_fold_table_scores_the_final_weights_and_tells_purged_folds_apart(tmp_path):
    """best.ckpt is chosen on the fold's own held-out images, so the fold table averaged scores selected on the
    images they score. It now takes each run's final weights (``final_weights_val/mIoU``), says how many folds
    had only best.ckpt's score, and keeps runs with other ``data.purge_frames`` in their own row."""
    import yaml

    from seglight.training.sweep import write_summary

    def job(name: str, fold: int, best: float, final: float | None, purge: int | None) -> None:
        d = tmp_path / name
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["loss=ce", f"data.fold={fold}", "data.folds=2"]))
        metrics = {"val/mIoU": best, "best_ckpt": "x", "purge_frames": purge}
        if final is not None:
            metrics["final_weights_val/mIoU"] = final
        (d / "metrics.json").write_text(json.dumps(metrics))

    job("a0", 0, 0.60, 0.50, 60)
    job("a1", 1, 0.70, 0.60, 60)
    job("b0", 0, 0.80, 0.80, 0)  # the same overrides, unpurged: not averaged with the purged runs
    job("c0", 0, 0.40, None, None)  # an older run: best.ckpt's score only, no purge recorded
    rows = write_summary(tmp_path)
    assert {r["job"]: r["final_weights_val/mIoU"] for r in rows} == {"a0": 0.5, "a1": 0.6, "b0": 0.8, "c0": None}
    text = (tmp_path / "summary.md").read_text()
    assert "| loss=ce data.folds=2 | 60 | 2 | 0.5500 +- 0.0707 | 0.5000 | 0.6000 |" in text
    assert "| loss=ce data.folds=2 | 0 | 1 (incomplete: fold 1 missing) | 0.8000 +- - |" in text
    assert (
        "| loss=ce data.folds=2 | - | 1 (1 scored by best.ckpt, chosen on the fold; incomplete: fold 1 missing) | "
        "0.4000 +- - |" in text
    )
    complete, partial = "| loss=ce data.folds=2 | 60 | 2 |", "| loss=ce data.folds=2 | 0 | 1 ("
    assert text.index(complete) < text.index(partial)  # recipes scored on all their folds first
