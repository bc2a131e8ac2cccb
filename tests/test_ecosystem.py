"""Sweeps with a summary, logged media (W&B offline, TensorBoard, CSV curves), cluster presets."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, compose_config
from optuna.distributions import CategoricalDistribution, FloatDistribution

from seglight.training.fit import train
from seglight.training.search_space import search_space
from seglight.training.sweep import write_summary


def test_multirun_writes_summary(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "seglight.train",
            "--multirun",
            "loss=ce,dice_ce",
            *TINY,
            f"data.root={data_cache}",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list(sweep.glob("*/metrics.json"))) == 2
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 2
    assert {r["overrides"].split()[0] for r in rows} == {"loss=ce", "loss=dice_ce"}
    mious = [float(r["val/mIoU"]) for r in rows]
    assert mious == sorted(mious, reverse=True)
    assert all(Path(r["best_ckpt"]).is_file() for r in rows)
    assert (sweep / "summary.md").read_text().count("\n") == 6  # header, rule, 2 rows, blank, the plot's link
    assert all(float(r["fit_minutes"]) > 0 and float(r["val_img_per_s"]) > 0 for r in rows)
    assert (sweep / "summary.png").stat().st_size > 10_000  # accuracy against cost, one point per job


def test_summary_ranks_jobs_and_keeps_failed_ones(tmp_path):
    for job, miou in (("0", 0.4), ("1", 0.7), ("2", None)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- loss=l{job}\n")
        if miou is not None:
            (tmp_path / job / "metrics.json").write_text(json.dumps({"val/mIoU": miou, "best_ckpt": "x"}))
    rows = write_summary(tmp_path)
    assert [r["job"] for r in rows] == ["1", "0", "2"]
    assert rows[2]["best_ckpt"] == "(failed)"


def test_wandb_offline_run_holds_masks_and_iou_table(train_cfg):
    cfg = train_cfg("logger=wandb", "callbacks.media.every_n_epochs=1", "callbacks.media.num_images=2")
    train(cfg)
    runs = list((Path(cfg.run_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media"
    masks = list((media / "images" / "mask").rglob("*.png"))
    assert len(masks) >= 4  # 2 images x (ground truth + prediction)
    examples = [p for p in (media / "images").rglob("*.png") if "mask" not in p.parts]
    assert examples, "no val example images logged"
    tables = list((media / "table").rglob("*.table.json"))
    assert tables
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["class", "IoU"]
    assert [row[0] for row in table["data"]] == ["background", "circle", "square", "triangle"]


def test_tensorboard_gets_images_and_csv_gets_curves(train_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = train_cfg("logger=[csv,tensorboard]", "callbacks.media.every_n_epochs=1")
    train(cfg)
    acc = EventAccumulator(str(Path(cfg.run_dir) / "tensorboard"))
    acc.Reload()
    images = acc.Tags()["images"]
    assert any(t.startswith("val/examples") for t in images) and "val/confusion" in images
    assert (Path(cfg.run_dir) / "csv" / "curves.png").stat().st_size > 5000


def test_cluster_and_optuna_presets_compose():
    cfg = compose_config(
        ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], return_hydra_config=True
    )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.nodes == 2 and cfg.hydra.launcher.tasks_per_node == 4
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 2
    cfg = compose_config(["hparams_search=optuna_miou"], return_hydra_config=True)
    search = cfg.hparams_search
    assert search.direction == "maximize" and search.sampler._target_ == "optuna.samplers.TPESampler"
    assert search.storage is None  # sqlite:///<sweep dir>/study.db
    assert cfg.hydra.sweep.dir == cfg.hydra.run.dir == "multirun/seglight_miou"  # the same command resumes
    assert search_space(search.params) == {
        "optimizer.lr": FloatDistribution(0.0001, 0.01, log=True),
        "loss": CategoricalDistribution(["ce", "dice", "focal", "dice_ce"]),
        "encoder": CategoricalDistribution(["resnet18", "resnet34", "mobilenet_v2"]),
    }


def test_experiment_presets_come_from_experiments_folder():
    names = sorted(p.stem for p in (Path(__file__).parents[1] / "experiments" / "conf" / "experiment").glob("*.yaml"))
    assert names, "no experiment presets"
    for name in names:
        cfg = compose_config([f"experiment={name}"])
        assert cfg.trainer.max_epochs >= 1


def test_optuna_sweep_maximises_the_returned_miou(tmp_path, data_cache, monkeypatch):
    import optuna

    from seglight.training.pruning import STORAGE_ENV
    from seglight.training.search import search

    monkeypatch.setenv(STORAGE_ENV, "")  # the search sets it; restored after the test
    overrides = ["hparams_search=optuna_miou", "hparams_search.n_trials=2", *TINY, f"data.root={data_cache}"]
    sweep = tmp_path / "optuna"
    best = search(compose_config(overrides).hparams_search, overrides, sweep, compose_config)
    study = optuna.load_study(study_name="seglight_miou", storage=f"sqlite:///{sweep / 'study.db'}")
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 2 and {r["state"] for r in rows} == {"complete"}
    assert best == study.best_value == pytest.approx(float(rows[0]["val/mIoU"]))
    assert set(study.best_params) == {"optimizer.lr", "loss", "encoder"}
    assert rows[0]["job"] == str(study.best_trial.number)


def test_sweep_jobs_share_a_wandb_group(tmp_path):
    from hydra.core.hydra_config import HydraConfig

    from seglight.training.loggers import sweep_group

    groups = {}
    for mode in ("MULTIRUN", "RUN"):
        cfg = compose_config(
            [f"hydra.mode={mode}", f"hydra.sweep.dir={tmp_path}/2026-11-25/10-00-00"], return_hydra_config=True
        )
        HydraConfig.instance().set_config(cfg)
        groups[mode] = sweep_group()
    HydraConfig.instance().cfg = None
    assert groups == {"MULTIRUN": "2026-11-25/10-00-00", "RUN": None}
