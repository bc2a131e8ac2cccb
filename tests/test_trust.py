"""Numbers that can be trusted and work that is never lost: fixed splits, keyed caches, one scoring rule for
validation and evaluate, checkpoints every epoch, validated endings, resumable logs, bounded runs, DDP seeds."""

import csv
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_config
from helpers import TOY, make_pairs, train_command
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image

from seglight.data.datamodule import SegDataModule
from seglight.data.loaders import seed_worker
from seglight.data.synthetic import ShapesDataModule
from seglight.inference.evaluation import evaluate
from seglight.inference.predictor import TorchPredictor
from seglight.inference.scored_data import split_dataset
from seglight.model.checkpoint import SAVED_AS, load_checkpoint
from seglight.model.module import SegmentationModule
from seglight.training.fit import build_module, build_trainer, train


def _folder_cfg(tmp_path: Path, images: Path, masks: Path, *overrides: str):
    cfg = compose_config(
        [
            "data=folder",
            f"data.images={images}",
            f"data.masks={masks}",
            "data.num_classes=3",
            "data.val_fraction=0.3",
            "data.crop_size=32",
            "data.batch_size=4",
            "data.eval_batch_size=4",
            "data.num_workers=0",
            "trainer=debug",
            "logger=csv",
            *overrides,
        ]
    )
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path)
    return cfg


# ---- 1: the val hold-out is fixed, recorded, and what evaluate scores --------------------------------------
def test_val_split_is_independent_of_the_seed_and_evaluate_scores_the_recorded_split(tmp_path, caplog):
    images, masks = make_pairs(tmp_path / "data", n=10, color_masks=False)
    runs = []
    for seed in (1, 2):
        cfg = _folder_cfg(tmp_path / f"run{seed}", images, masks, f"seed={seed}")
        runs.append((cfg, train(cfg)))
    splits = [json.loads((Path(cfg.run_dir) / "splits.json").read_text()) for cfg, _ in runs]
    assert splits[0] == splits[1] and len(splits[0]["val"]) == 3 and len(splits[0]["train"]) == 7
    assert not set(splits[0]["val"]) & set(splits[0]["train"]) and splits[0]["test"] == []
    cfg, metrics = runs[0]
    assert load_checkpoint(metrics["best_ckpt"])["data_split"]["files"] == splits[0]

    out = tmp_path / "eval"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "seglight.evaluate",
            f"ckpt={metrics['best_ckpt']}",
            "data=folder",
            f"data.images={images}",
            f"data.masks={masks}",
            "data.num_classes=3",
            "data.val_fraction=0.3",
            "split=val",
            f"output={out}",
            "precision=32",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "scoring the checkpoint's own val split: 3 images" in res.stdout
    with (out / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["image"]).name for r in rows] == splits[0]["val"]
    assert set(rows[0]) == {"image", "mIoU", "acc", "iou/class_0", "iou/class_1", "iou/class_2"}

    # another split seed at evaluate time: warned about, and the run's own images are scored all the same
    dm = instantiate(_folder_cfg(tmp_path, images, masks, "data.split_seed=5").data, _convert_="all")
    assert [p.name for p, _ in dm.split_pairs("val")] != splits[0]["val"]
    data_cfg = OmegaConf.to_container(_folder_cfg(tmp_path, images, masks, "data.split_seed=5").data, resolve=True)
    with caplog.at_level(logging.WARNING):
        dataset = split_dataset(dm, "val", load_checkpoint(metrics["best_ckpt"])["data_split"], data_cfg)
    assert [p.name for p, _ in dataset.pairs] == splits[0]["val"]
    assert "data.split_seed differ from the checkpoint's" in caplog.text


def test_scored_outside_its_recorded_split_evaluate_flags_images_named_like_its_training_images(tmp_path, caplog):
    """In other folders (the data moved, a fold model scored without its fold) evaluate scores the configured split:
    images the model trained on were scored as held out, with only a warning that the data differs."""
    from seglight.inference.evaluation import evaluate_checkpoint
    from seglight.report.tables import val_caveat

    images, masks = make_pairs(tmp_path / "data", n=10, color_masks=False)
    metrics = train(_folder_cfg(tmp_path / "run", images, masks))
    recorded = json.loads((tmp_path / "run" / "splits.json").read_text())
    trained, validated = set(recorded["train"]), set(recorded["val"])
    (tmp_path / "data").rename(tmp_path / "moved")
    images, masks = tmp_path / "moved" / "images", tmp_path / "moved" / "masks"
    for seed, out in ((0, "same"), (5, "reshuffled")):
        cfg = _folder_cfg(tmp_path, images, masks, f"data.split_seed={seed}")
        data = OmegaConf.to_container(cfg.data, resolve=True)
        with caplog.at_level(logging.WARNING):
            evaluate_checkpoint(metrics["best_ckpt"], data, "val", tmp_path / out, report=False, precision="32")
        scored = {Path(r["image"]).name for r in csv.DictReader((tmp_path / out / "per_image.csv").open())}
        result = json.loads((tmp_path / out / "metrics.json").read_text())
        assert result.get("named_like_training") == (len(scored & trained) or None)
        assert ("named like its training images" in (val_caveat(result) or "")) == bool(scored & trained)
        assert result.get("chosen_on") == ("val/mIoU" if scored & validated else None)  # best.ckpt's own val images
    assert result["named_like_training"] > 0  # split_seed=5 draws some training images into val
    assert result["ci_blocks"] is None  # no frame pattern: images drawn one by one
    data["frame_pattern"] = r"^(img)_(\d+)$"  # img_000 ... img_009: frames of one sequence
    evaluate_checkpoint(metrics["best_ckpt"], data, "val", tmp_path / "blocks", report=False, block_frames=2)
    blocks = json.loads((tmp_path / "blocks" / "metrics.json").read_text())["ci_blocks"]
    assert blocks == len({int(Path(name).stem[4:]) // 2 for name in scored})
    assert json.loads((tmp_path / "blocks" / "metrics.json").read_text())["mIoU_ci"] is None  # under 10 blocks


def test_recorded_splits_are_looked_up_in_their_own_folders(tmp_path):
    # generated shapes name the files of every split 00000.png, 00001.png, ...
    dm = ShapesDataModule(root=str(tmp_path), num_train=4, num_val=3, num_test=2, image_size=32, num_workers=0)
    before = {split: dm.split_pairs(split) for split in ("train", "val", "test")}
    dm.use_recorded_splits(dm.split_files())
    assert {split: dm.split_pairs(split) for split in ("train", "val", "test")} == before


def test_resume_keeps_the_split_the_run_started_with(tmp_path, caplog):
    images, masks = make_pairs(tmp_path / "data", n=10, color_masks=False)
    first = _folder_cfg(tmp_path / "run", images, masks, "trainer.max_epochs=1")
    train(first)
    started = json.loads((tmp_path / "run" / "splits.json").read_text())
    resumed = _folder_cfg(tmp_path / "run", images, masks, "trainer.max_epochs=2", "data.split_seed=5", "resume=true")
    with caplog.at_level(logging.WARNING):
        metrics = train(resumed)
    assert "data.split_seed differ from the run's: it resumes on the files it started with" in caplog.text
    assert json.loads((tmp_path / "run" / "splits.json").read_text()) == started
    assert load_checkpoint(Path(resumed.run_dir) / "checkpoints" / "last.ckpt")["data_split"]["files"] == started
    assert load_checkpoint(metrics["best_ckpt"])["epoch"] >= 0


# ---- 3: class-count cache keyed by the palette ----------------------------------------------------------
def test_class_weights_follow_a_reordered_palette(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    index = np.zeros((40, 40), np.uint8)
    index[:20] = 1  # red: 800 px, green: 100 px, bg: 700 px
    index[30:, :10] = 2
    for i in range(2):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(images / f"{i}.png")
        Image.fromarray(TOY.to_color(index)).save(masks / f"{i}.png")
    TOY.to_csv(tmp_path / "a.csv")
    rows = (tmp_path / "a.csv").read_text().splitlines()
    (tmp_path / "b.csv").write_text("\n".join([rows[0], rows[1], rows[3], rows[2]]) + "\n")  # red <-> green
    weights = [
        SegDataModule(
            str(images), str(masks), palette=str(tmp_path / f"{p}.csv"), val_fraction=0.0, num_workers=0
        ).class_weights()
        for p in ("a", "b")
    ]
    assert weights[0][1] < weights[0][2]  # red is frequent, green rare
    assert weights[1] == [weights[0][0], weights[0][2], weights[0][1]]
    assert not list((tmp_path / ".seglight_cache").glob(".*tmp*"))  # written atomically, nothing left over


# ---- 7, 12: validation scores like evaluate, tiles and mixed sizes included -------------------------------
def test_validation_tiles_and_mixed_sizes_score_like_evaluate(tmp_path):
    rng = np.random.default_rng(0)
    for d in ("img", "ann"):
        (tmp_path / d).mkdir()
    for i, (h, w) in enumerate([(70, 150), (64, 64), (90, 40), (70, 150), (33, 97)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (h, w)).astype(np.uint8)).save(tmp_path / "ann" / f"{i}.png")
    torch.manual_seed(0)
    module = SegmentationModule(["a", "b", "c"], tile_size=64, tile_overlap=0.25).eval()
    dm = SegDataModule(
        str(tmp_path / "img"),
        str(tmp_path / "ann"),
        val_images=str(tmp_path / "img"),
        val_masks=str(tmp_path / "ann"),
        num_classes=3,
        eval_batch_size=4,
        num_workers=0,
    )
    trainer = pl.Trainer(
        accelerator="cpu", precision="32-true", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    validated = trainer.validate(module, datamodule=dm, verbose=False)[0]
    predictor = TorchPredictor(module, precision="32", tile_size="auto")  # evaluate's default: the model's tiling
    assert (predictor.tile_size, predictor.tile_overlap) == (64, 0.25)
    evaluated = evaluate(predictor, dm.raw_dataset("val"), tmp_path / "eval")
    assert validated["val/mIoU"] == pytest.approx(evaluated["mIoU"], abs=1e-6)
    assert validated["val/acc"] == pytest.approx(evaluated["acc"], abs=1e-6)
    untiled = evaluate(TorchPredictor(module, precision="32", tile_size=None), dm.raw_dataset("val"), tmp_path / "e2")
    assert untiled["mIoU"] != pytest.approx(evaluated["mIoU"], abs=1e-6)  # the tiling is what made them agree


# ---- 8, 10: last.ckpt every epoch; a kill loses at most one epoch and no log row ---------------------------
class _LastCheckpointProbe(pl.Callback):
    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, []

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch > 0:
            self.seen.append(torch.load(self.path, weights_only=True)["epoch"] if self.path.exists() else None)


def test_last_checkpoint_is_written_after_every_training_epoch(train_cfg):
    cfg = train_cfg("trainer.max_epochs=4", "trainer.check_val_every_n_epoch=3")
    dm = instantiate(cfg.data, _convert_="all")
    trainer = build_trainer(cfg)
    probe = _LastCheckpointProbe(Path(cfg.run_dir) / "checkpoints" / "last.ckpt")
    trainer.callbacks.append(probe)
    trainer.fit(build_module(cfg, dm), datamodule=dm)
    assert probe.seen == [0, 1, 2]


def test_sigkill_between_validations_then_resume_keeps_every_epoch_in_the_csv(tmp_path, data_cache):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    cmd = train_command(run, data_cache, "trainer.check_val_every_n_epoch=4")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                killed_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
            except Exception:  # noqa: BLE001  (read while being replaced: try again)
                continue
            if killed_at >= 1:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_at is not None and 1 <= killed_at < 3  # killed before the first validation (epoch 3)
    resumed = subprocess.run([*cmd, "resume=true"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["epoch"] == 5 and final["global_step"] == 12
    with (run / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    train_epochs = sorted({int(float(r["epoch"])) for r in rows if r.get("train/loss_epoch")})
    assert train_epochs == list(range(6))  # every epoch from 0, each once
    steps = [int(r["step"]) for r in rows if r.get("train/loss_step")]
    assert len(steps) == len(set(steps)) == 12  # no step logged twice
    lr_steps = [int(r["step"]) for r in rows if r.get("lr-AdamW")]
    assert len(lr_steps) == len(set(lr_steps)) == 6  # one learning rate per epoch, none twice


def test_resume_continues_the_same_wandb_run(tmp_path, monkeypatch):
    from pytorch_lightning.utilities import rank_zero_only

    from seglight.training.loggers import WANDB_ID_FILE, wandb_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    first = wandb_logger(str(tmp_path), mode="offline")
    again = wandb_logger(str(tmp_path), mode="offline", resume=True)
    assert again._wandb_init["id"] == first._wandb_init["id"]
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # a DDP rank starting later must not replace rank 0's id
    wandb_logger(str(tmp_path), mode="offline")
    assert (tmp_path / WANDB_ID_FILE).read_text() == first._wandb_init["id"]
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    fresh = wandb_logger(str(tmp_path), mode="offline", resume=False)
    assert fresh._wandb_init["id"] != first._wandb_init["id"]


def test_a_fresh_run_in_a_used_run_dir_starts_its_csv_anew(train_cfg):
    cfg = train_cfg("trainer.max_epochs=2")
    train(cfg)
    train(cfg)
    with (Path(cfg.run_dir) / "csv" / "metrics.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss_step")]
    assert steps == sorted(set(steps)) and len(steps) == 4  # the second run's 2 x 2 steps, not both runs'


def test_validation_media_on_images_the_model_must_pad(train_cfg):
    cfg = train_cfg("data.image_size=48", "data.crop_size=32", "logger=tensorboard", "callbacks.media.every_n_epochs=1")
    metrics = train(cfg)  # val images 48x48: not a multiple of the model's divisor 32
    assert 0.0 <= metrics["val/mIoU"] <= 1.0
    assert list((Path(cfg.run_dir) / "tensorboard").glob("events.out.tfevents.*"))


# ---- 9: the epoch that ends a run is validated and saved ---------------------------------------------------
def test_a_run_ending_between_validations_validates_and_saves_its_final_weights(train_cfg):
    cfg = train_cfg("trainer.max_epochs=3", "trainer.check_val_every_n_epoch=5")
    metrics = train(cfg)
    best = load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "best.ckpt")
    assert metrics["best_ckpt"].endswith("best.ckpt") and best["global_step"] == 6  # the final weights
    assert 0.0 <= metrics["val/mIoU"] <= 1.0
    last = load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.ckpt")
    state = next(v for k, v in last["callbacks"].items() if "val/mIoU" in k)  # what a resume would start from
    assert float(state["best_model_score"]) == pytest.approx(metrics["val/mIoU"], abs=1e-6)
    assert best[SAVED_AS] == {"file": "best.ckpt", "monitor": "val/mIoU"}  # written as the run's choice
    assert last[SAVED_AS] == {"file": "last.ckpt", "monitor": None}  # and last.ckpt, re-saved after it, is not


def test_only_the_best_file_of_a_monitored_callback_is_marked_chosen(tmp_path):
    """A monitored callback's last.ckpt (save_last) holds the weights the run ended with, not a choice."""
    from seglight.training.callbacks import RunCheckpoint

    callback = RunCheckpoint(dirpath=tmp_path, filename="best", monitor="val/mIoU", save_last=True)
    for written, best, chosen in (("best.ckpt", "best.ckpt", "val/mIoU"), ("last.ckpt", "best.ckpt", None)):
        callback.best_model_path, callback._writing = str(tmp_path / best), str(tmp_path / written)
        checkpoint: dict = {}
        callback.on_save_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
        assert checkpoint[SAVED_AS] == {"file": written, "monitor": chosen}


def test_a_run_cut_by_max_time_validates_and_saves_its_final_weights(train_cfg):
    # 10 s: the first epoch must end before the cut even when other work shares the cores
    cfg = train_cfg("trainer.max_epochs=1000", "trainer.check_val_every_n_epoch=1000", "trainer.max_time=00:00:00:10")
    metrics = train(cfg)
    last = load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.ckpt")
    best = load_checkpoint(metrics["best_ckpt"])
    assert 0 < last["epoch"] < 999 and best["global_step"] == last["global_step"]  # cut by time, final weights kept


# ---- 13: max_epochs=-1 is bounded by time, or refused ------------------------------------------------------
# 9-second bounds: several tiny epochs even when other work shares the cores
@pytest.mark.parametrize("bound", ["callbacks.time_budget.budget=0.15", "trainer.max_time=00:00:00:09"])
def test_unbounded_epochs_run_to_a_time_limit(train_cfg, bound):
    cfg = train_cfg("trainer.max_epochs=-1", "scheduler=poly", bound)
    metrics = train(cfg)
    assert load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.ckpt")["epoch"] >= 1  # several epochs, then stop
    assert Path(metrics["best_ckpt"]).is_file() and 0.0 <= metrics["val/mIoU"] <= 1.0


def test_unbounded_epochs_without_a_time_limit_say_what_is_missing(train_cfg):
    with pytest.raises(ValueError, match="max_epochs=-1 trains without end.*time_budget.budget.*max_time"):
        train(train_cfg("trainer.max_epochs=-1"))


# ---- 17: augmentations from (seed, epoch, sample): alike on every rank and worker count, new every epoch --------
def test_a_sample_draws_from_seed_epoch_and_index_whatever_the_workers_and_rank(tmp_path):
    """Before, each rank and each DataLoader worker drew a sequence of its own, so a crop depended on the worker
    count (data.num_workers=auto differs between machines) and restarted from the seed on a resume."""
    images, masks = make_pairs(tmp_path, n=6, color_masks=False)

    def crops(rank: int, workers: int, epochs: tuple[int, ...]) -> list[torch.Tensor]:
        """The images of each given epoch, in sample order (no shuffle), from one persistent loader."""
        dm = SegDataModule(str(images), str(masks), num_classes=3, val_fraction=0.2, crop_size=32, batch_size=2,
                           num_workers=workers, seed=3)  # fmt: skip
        dm.trainer = SimpleNamespace(global_rank=rank)
        dm.setup("fit")
        sampler = dm.train_dataloader().sampler  # Lightning calls its set_epoch as each epoch starts
        loader = torch.utils.data.DataLoader(dm.datasets["train"], batch_size=2, num_workers=workers,
                                             persistent_workers=workers > 0)  # fmt: skip
        out = []
        for epoch in epochs:
            sampler.set_epoch(epoch)  # reaches the workers already running (persistent) through shared memory
            out.append(torch.cat([batch["image"] for batch in loader]))
        return out

    alone = crops(0, 0, (0, 1))
    for rank, workers in ((0, 2), (1, 0), (1, 1)):
        assert all(torch.equal(a, b) for a, b in zip(alone, crops(rank, workers, (0, 1)))), (rank, workers)
    assert not torch.equal(alone[0], alone[1])  # each epoch draws anew
    assert torch.equal(crops(0, 0, (1,))[0], alone[1])  # epoch 1 alike, started there (a resume) or not


def test_ddp_ranks_share_one_order_per_epoch_and_split_it():
    from seglight.data.loaders import EpochDraws, EpochShard

    data = list(range(10))

    def shards(epoch: int) -> list[list[int]]:
        draws = EpochDraws(3)
        out = []
        for rank in (0, 1):
            sampler = EpochShard(data, draws, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)  # what Lightning calls as the epoch starts
            out.append(list(sampler))
        return out

    first = shards(0)
    assert sorted(first[0] + first[1]) == data  # disjoint, and together all of them
    assert shards(0) == first and shards(1) != first  # from (seed, epoch)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_resumed_run_trains_on_what_an_uninterrupted_run_would_have(tmp_path, monkeypatch, workers):
    """Lightning restores weights and optimizer, not the random state: the first resumed epoch repeated epoch
    0's shuffle and crops. Now every epoch draws from (seed, epoch): stopped after epoch 0 and resumed, a run sees
    the batches of an uninterrupted run and ends with its weights. With workers, Lightning starts the first epoch's
    iterator (and the workers prefetch) before it restores the checkpoint's epoch."""
    images, masks = make_pairs(tmp_path / "data", n=12, color_masks=False)
    seen: dict[str, list[str]] = {}

    class Batches(pl.Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            image = batch["image"].float().contiguous()
            seen.setdefault(self.name, []).append(f"{trainer.current_epoch}:{float(image.sum()):.6f}")

    def run(name: str, epochs: int, *overrides: str) -> dict:
        epochs_and_dtype = (f"trainer.max_epochs={epochs}", "trainer.precision=32-true", f"data.num_workers={workers}")
        cfg = _folder_cfg(tmp_path / name, images, masks, *epochs_and_dtype, *overrides)

        def recording(c, extra_callbacks=()):
            return build_trainer(c, [*extra_callbacks, Batches(name)])

        monkeypatch.setattr("seglight.training.fit.build_trainer", recording)
        train(cfg)
        return load_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"]

    whole = run("whole", 3)
    run("parts", 1)
    resumed = run("parts", 3, "resume=true")
    assert [b for b in seen["whole"] if not b.startswith("0:")] == seen["parts"][2:]  # epochs 1, 2
    assert seen["parts"][:2] != seen["parts"][2:4]  # not epoch 0 again
    assert all(torch.equal(whole[k], resumed[k]) for k in whole), "the resumed run ended with other weights"


def test_seed_worker_mixes_in_the_rank(monkeypatch):
    seeds = []
    monkeypatch.setattr(np.random, "seed", lambda s: seeds.append(s))
    seed_worker(0, rank=0)
    seed_worker(0, rank=1)
    assert seeds[0] != seeds[1]


def test_a_resumed_run_reports_the_fit_time_of_all_its_processes(train_cfg):
    """fit_minutes (summary.png's cost axis) counts the time before the resume, which the checkpoint saved."""
    from seglight.util.files import atomic_write

    cfg = train_cfg("trainer.max_epochs=1")
    train(cfg)
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["callbacks"]["TimeBudget"]["elapsed_s"] > 0  # measured with the budget off too
    checkpoint["callbacks"]["TimeBudget"]["elapsed_s"] = 6000.0  # as if the first process had fitted 100 minutes
    atomic_write(last, lambda f: torch.save(checkpoint, f))
    cfg.trainer.max_epochs = 2
    cfg.resume = True
    assert 100 < train(cfg)["fit_minutes"] < 101


def test_a_run_dir_moved_before_its_resume_keeps_its_better_best_checkpoint(train_cfg, tmp_path):
    """Lightning keeps a ModelCheckpoint's scores only when the checkpoint's dirpath is the current one: a run
    dir moved (or copied off a cluster) and resumed forgot best.ckpt's score, and its next validation wrote a
    worse model over it."""
    cfg = train_cfg("trainer.max_epochs=1")
    train(cfg)
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    (key,) = [k for k in checkpoint["callbacks"] if k.startswith("ModelCheckpoint{'monitor': 'val/mIoU'")]
    checkpoint["callbacks"][key]["best_model_score"] = torch.tensor(2.0)  # as if best.ckpt scored beyond reach
    torch.save(checkpoint, last)
    moved = tmp_path / "moved"
    Path(cfg.run_dir).rename(moved)
    best_before = (moved / "checkpoints" / "best.ckpt").read_bytes()

    cfg.run_dir, cfg.resume, cfg.trainer.max_epochs = str(moved), True, 2
    metrics = train(cfg)

    assert (moved / "checkpoints" / "best.ckpt").read_bytes() == best_before
    assert Path(metrics["best_ckpt"]) == (moved / "checkpoints" / "best.ckpt").resolve()
    assert load_checkpoint(moved / "checkpoints" / "last.ckpt")["epoch"] == 1  # it did train on


def test_a_copied_run_dir_resumes_on_its_own_files_and_leaves_the_original_alone(train_cfg, tmp_path):
    """The copy (the original still in place) keeps its best.ckpt's score; nothing is written to the original."""
    import shutil

    cfg = train_cfg("trainer.max_epochs=1")
    train(cfg)
    original = Path(cfg.run_dir)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    last = copy / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    (key,) = [k for k in checkpoint["callbacks"] if k.startswith("ModelCheckpoint{'monitor': 'val/mIoU'")]
    checkpoint["callbacks"][key]["best_model_score"] = torch.tensor(2.0)  # as if best.ckpt scored beyond reach
    torch.save(checkpoint, last)
    before = {p: p.read_bytes() for p in [*(copy / "checkpoints").iterdir(), *(original / "checkpoints").iterdir()]}

    cfg.run_dir, cfg.resume, cfg.trainer.max_epochs = str(copy), True, 2
    metrics = train(cfg)

    assert (copy / "checkpoints" / "best.ckpt").read_bytes() == before[copy / "checkpoints" / "best.ckpt"]
    assert all(p.read_bytes() == b for p, b in before.items() if p.parent.parent == original)
    assert Path(metrics["best_ckpt"]) == (copy / "checkpoints" / "best.ckpt").resolve()


def test_the_run_checkpoint_saves_its_state_under_model_checkpoints_key(tmp_path):
    """Runs checkpointed by Lightning's ModelCheckpoint resume with RunCheckpoint (and back)."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from seglight.training.callbacks import RunCheckpoint

    kwargs = {"dirpath": tmp_path, "filename": "best", "monitor": "val/mIoU", "mode": "max"}
    assert RunCheckpoint(**kwargs).state_key == ModelCheckpoint(**kwargs).state_key
