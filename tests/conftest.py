"""Shared fixtures: the real Hydra config composed on tiny generated data in tmp dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from omegaconf import DictConfig, open_dict
from PIL import Image

from seglight.config import compose_config  # noqa: F401  (tests import it from here)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = [
    "data.num_train=8",
    "data.num_val=4",
    "data.image_size=64",
    "data.crop_size=64",
    "data.batch_size=4",
    "data.eval_batch_size=4",
    "data.num_workers=0",
    "trainer=debug",
    "logger=csv",
]


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One cache folder for generated shapes, shared by the session's tests."""
    return tmp_path_factory.mktemp("shapes_cache")


@pytest.fixture
def train_cfg(tmp_path, data_cache) -> Callable[..., DictConfig]:
    """train_cfg("loss=focal", ...) -> the train config on tiny shapes, run_dir in tmp_path."""

    def make(*overrides: str) -> DictConfig:
        cfg = compose_config([*TINY, f"data.root={data_cache}", *overrides])
        with open_dict(cfg):
            cfg.run_dir = str(tmp_path / "run")
        return cfg

    return make


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(best checkpoint, data root, run dir) of the shapes model trained for a few steps, once per session.
    Shared: a test that changes the checkpoint or the run dir copies them first."""
    from seglight.training.fit import train

    root = tmp_path_factory.mktemp("trained_tiny")
    cfg = compose_config([*TINY, f"data.root={root / 'data'}", "trainer.limit_train_batches=4"])
    with open_dict(cfg):
        cfg.run_dir = str(root / "run")
    return Path(train(cfg)["best_ckpt"]), root / "data", root / "run"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2400) -> np.ndarray:
    """Renders ``html`` in headless chromium and returns the screenshot (H,W,3) uint8."""
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return np.asarray(Image.open(png).convert("RGB"))


NEEDS_CHROMIUM = pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
)
