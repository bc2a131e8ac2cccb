"""The package as users get it: public names at the root, checkpoints that load offline, and a wheel
that carries its configs so every command runs outside the source checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import tomllib
import torch
from conftest import TINY
from PIL import Image

from seglight.config import ROOT
from seglight.model.metrics import MONITOR
from seglight.model.module import SegmentationModule

CLASSES = ["background", "circle", "square"]


# ---- public names ------------------------------------------------------------------------------
def test_public_names_import_from_package_root():
    from seglight import Palette, Predictor, SegDataModule, SegmentationModule, build_loss, load_module
    from seglight.data.datamodule import SegDataModule as SegDataModule_
    from seglight.data.palette import Palette as Palette_
    from seglight.inference.predictor import Predictor as Predictor_
    from seglight.model.checkpoint import load_module as load_module_
    from seglight.model.losses import build_loss as build_loss_
    from seglight.model.module import SegmentationModule as SegmentationModule_

    assert (SegmentationModule, SegDataModule, Palette, Predictor, load_module, build_loss) == (
        SegmentationModule_,
        SegDataModule_,
        Palette_,
        Predictor_,
        load_module_,
        build_loss_,
    )


def test_package_import_stays_light():
    """`import seglight` (every `python -m seglight.<command> --help`) loads neither torch nor the model code."""
    code = "import sys, seglight; print(sorted(m for m in ('torch', 'seglight.model.module') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


# ---- load_from_checkpoint ----------------------------------------------------------------------
@pytest.mark.parametrize("weights", ["/nonexistent/weights.pth", "imagenet"])
def test_load_from_checkpoint_needs_no_weight_source(tmp_path, monkeypatch, weights):
    """A checkpoint trained from a local .pth or the hub loads on a machine with neither (no network here)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    trained = SegmentationModule(class_names=CLASSES, encoder_weights=None).eval()
    path = tmp_path / "model.ckpt"
    torch.save(
        {
            "state_dict": trained.state_dict(),
            "hyper_parameters": {**trained.hparams, "encoder_weights": weights},
            "pytorch-lightning_version": pl.__version__,
        },
        path,
    )

    loaded = SegmentationModule.load_from_checkpoint(path).eval()

    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(image), trained(image), rtol=0, atol=0)
    assert loaded.class_names == CLASSES
    assert torch.load(path, weights_only=True)["hyper_parameters"]["encoder_weights"] == weights


# ---- the wheel ---------------------------------------------------------------------------------
def _packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_wheel_lists_every_source_package():
    """pyproject lists packages by hand (conf/ maps to seglight.conf): a new seglight/ folder must be added."""
    source = {
        ".".join(d.relative_to(ROOT).parts)
        for d in (ROOT / "seglight").rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    }
    missing = sorted(source - set(_packages()))
    assert missing == [], f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def _build_ignore(folder: str, names: list[str]) -> set[str]:
    """What a clean clone lacks: venvs, build outputs, run outputs."""
    skip = {".venv", ".git", "build", "dist", "outputs", "multirun", "lightning_logs", "wandb", "__pycache__"}
    return {n for n in names if n in skip or n.endswith(".egg-info")}


def _setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 builds wheels without the `wheel` package: no need for build isolation (PyPI)."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout, installed with `pip install --target`; returns the target."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, wheels, target = tmp / "src", tmp / "wheels", tmp / "site"
    shutil.copytree(ROOT, src, ignore=_build_ignore)
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _check([*pip, "wheel", str(src), "--no-deps", *isolation, "-w", str(wheels)], cwd=tmp)
    (wheel,) = wheels.glob("seglight-*.whl")
    _check([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], cwd=tmp)
    return target


def _check(cmd: list[str], cwd: Path) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def _run_installed(target: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """python -P (no cwd on sys.path) with only the install target on PYTHONPATH, from a folder outside the checkout."""
    env = {**os.environ, "PYTHONPATH": str(target), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-P", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_wheel_ships_the_configs(installed, tmp_path):
    code = "import json, seglight; print(json.dumps([seglight.__file__, str(seglight.CONF_DIR)]))"
    out = _run_installed(installed, ["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    module_file, conf_dir = (Path(p) for p in json.loads(out.stdout))
    assert module_file == installed / "seglight" / "__init__.py"  # not the source checkout
    assert conf_dir == installed / "seglight" / "conf"
    assert (conf_dir / "train.yaml").is_file() and (conf_dir / "__init__.py").is_file()
    assert (conf_dir / "encoder" / "resnet18.yaml").is_file()

    # the experiment presets come along too (Hydra's search path)
    out = _run_installed(installed, ["-m", "seglight.train", "experiment=camvid", "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "decoder_pyramid_channels: 64" in out.stdout
    assert "class_weights: auto_sqrt" in out.stdout


def test_wheel_trains_and_predicts_outside_checkout(installed, tmp_path):
    run, images, masks = tmp_path / "run", tmp_path / "images", tmp_path / "masks"
    out = _run_installed(
        installed, ["-m", "seglight.train", *TINY, f"data.root={tmp_path / 'shapes'}", f"hydra.run.dir={run}"], tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics[MONITOR] <= 1.0
    assert Path(metrics["best_ckpt"]).is_file()

    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(images / "a.png")
    out = _run_installed(
        installed,
        ["-m", "seglight.predict", f"ckpt={metrics['best_ckpt']}", f"input={images}", f"output={masks}", "device=cpu"],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "predicted 1 image(s)" in out.stdout
    mask = np.array(Image.open(masks / "a.png"))
    assert mask.shape == (40, 56) and set(np.unique(mask)) <= {0, 1, 2, 3}
