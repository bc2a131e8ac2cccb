"""evaluate's report.html, bootstrap intervals in metrics.json, calibration and the stored temperature."""

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config
from PIL import Image

from seglight.data.dataset import SegmentationDataset
from seglight.data.palette import Palette
from seglight.inference.evaluation import evaluate, evaluate_checkpoint
from seglight.inference.predictor import Predictor
from seglight.model.calibration import ReliabilityBins, fit_temperature


@pytest.fixture(scope="module")
def trained(trained_tiny) -> tuple[Path, Path]:
    """(checkpoint, data root) of the shapes model trained for a few steps."""
    return trained_tiny[0], trained_tiny[1]


def test_fit_temperature_recovers_a_known_temperature():
    """Labels drawn from softmax(z); the model says 3z: the fitted temperature is 3."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (40000, 5))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = (p.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    assert fit_temperature(3 * z, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(z, labels) == pytest.approx(1.0, rel=0.05)


def test_ece_equals_its_definition():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=(30, 20)).transpose(2, 0, 1)  # (C,H,W)
    target = rng.integers(0, 4, (30, 20))
    target[:3] = 255
    bins = ReliabilityBins(10)
    bins.update(probs, target)
    keep = target != 255
    conf, correct = probs.max(0)[keep], (probs.argmax(0) == target)[keep]
    which = np.minimum((conf * 10).astype(int), 9)
    expected = sum(
        (which == b).sum() / keep.sum() * abs(correct[which == b].mean() - conf[which == b].mean())
        for b in range(10)
        if (which == b).any()
    )
    assert bins.ece() == pytest.approx(expected, abs=1e-9)


class OverconfidentPredictor(Predictor):
    """Reads the class from the red channel (class k painted as red = 60k) and says so with logit 8 against 0:
    about 99.9% confident, while the labels below disagree with the image on 30% of the pixels."""

    def __init__(self) -> None:
        palette = Palette(["a", "b", "c", "d"], [(0, 0, 0), (60, 0, 0), (120, 0, 0), (180, 0, 0)])
        super().__init__(palette.names, palette, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), tile_size=None)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        k = (x[:, 0] * 255 / 60).round().long().clamp(0, 3)  # (B,H,W)
        return torch.nn.functional.one_hot(k, 4).permute(0, 3, 1, 2).float() * 8.0


def _noisy_set(root: Path, n: int = 6, noise: float = 0.3) -> SegmentationDataset:
    rng = np.random.default_rng(2)
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    for i in range(n):
        cls = np.repeat(rng.integers(0, 4, (8, 10)), 8, axis=0).repeat(8, axis=1)  # (64,80) blocks
        image = np.zeros((64, 80, 3), np.uint8)
        image[..., 0] = cls * 60
        label = np.where(rng.random(cls.shape) < noise, rng.integers(0, 4, cls.shape), cls)
        Image.fromarray(image).save(root / "img" / f"{i}.png")
        Image.fromarray(label.astype(np.uint8)).save(root / "ann" / f"{i}.png")
    return SegmentationDataset(root / "img", root / "ann", 4)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model(tmp_path):
    predictor, ds = OverconfidentPredictor(), _noisy_set(tmp_path)
    result = evaluate(predictor, ds, tmp_path / "eval", calibrate=True)
    assert result["acc"] == pytest.approx(0.775, abs=0.03)  # 70% clean + 30% noise that lands right 1 in 4
    assert result["ece"] > 0.2  # ~99.9% sure, ~78% right
    assert result["temperature"] > 2
    assert result["ece_sample_after"] < result["ece_sample_before"] / 5
    # the fitted temperature applied to every pixel: calibrated, and the masks are unchanged
    predictor.temperature = result["temperature"]
    after = evaluate(predictor, ds, tmp_path / "after")
    assert after["ece"] < result["ece"] / 5 and after["mIoU"] == result["mIoU"]
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "Temperature fitted on this split" in html and f"{result['temperature']:.3f}" in html


def test_report_html_and_intervals_in_metrics_json(trained, tmp_path):
    ckpt, data = trained
    run = str(ckpt.parent.parent)
    result = evaluate_checkpoint(
        ckpt,
        {**_data_config(data)},
        "val",
        tmp_path / "eval",
        top_k=2,
    )
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    low, high = saved["mIoU_ci"]
    assert low <= saved["mIoU"] <= high and high - low > 0
    for name in ("background", "circle", "square", "triangle"):
        ci = saved[f"iou_ci/{name}"]
        assert ci is None or ci[0] <= saved[f"iou/{name}"] <= ci[1]
    assert 0 <= saved["ece"] <= 1 and result["mIoU"] == saved["mIoU"]
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "95% CI" in html and f"{saved['mIoU']:.3f}" in html and f"{low:.3f}" in html
    assert not re.search(r"(src|href)=\"https?:", html)  # self-contained: nothing fetched
    assert len(re.findall(r"src=\"data:image/png;base64,", html)) == 2 + 2 + 2  # confusion, reliability, 2+2
    assert run in html and "recorded by the run" in html  # provenance: run dir, split
    with (tmp_path / "eval" / "per_image.csv").open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: float(r["mIoU"]))
    worst = html.index("Worst 2 images")
    best = html.index("Best 2 images")
    for r in rows[:2]:  # the two lowest per-image mIoU are in the worst gallery, not only somewhere
        assert worst < html.index(f'alt="{Path(r["image"]).name}"') < best


def _data_config(root: Path) -> dict:
    cfg = compose_config([*TINY, f"data.root={root}"])
    from seglight.util.values import plain

    return plain(cfg.data)


def test_calibrate_stores_the_temperature_in_the_checkpoint_and_the_onnx_file(trained, tmp_path):
    from seglight.inference.export import export_checkpoint

    ckpt, data = trained
    copy = tmp_path / "model.ckpt"
    shutil.copy(ckpt, copy)
    result = evaluate_checkpoint(copy, _data_config(data), "val", tmp_path / "eval", report=False, calibrate=True)
    t = result["temperature"]
    assert t != pytest.approx(1.0, abs=1e-3)
    assert not (tmp_path / "eval" / "report.html").exists()
    predictor = Predictor.load(copy, precision="32")
    assert predictor.temperature == pytest.approx(t)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    plain = Predictor.load(ckpt, precision="32")
    assert plain.temperature == 1.0
    logits = np.log(plain.predict_image(image))  # log softmax: equal to the logits up to a shift per pixel
    expected = torch.from_numpy(logits / t).softmax(0).numpy()
    np.testing.assert_allclose(predictor.predict_image(image), expected, atol=1e-4)
    export_checkpoint(copy, "onnx", tmp_path / "export", smp_folder=False)
    onnx_predictor = Predictor.load(next((tmp_path / "export").glob("*.onnx")))
    assert onnx_predictor.temperature == pytest.approx(t)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2400) -> np.ndarray:
    """Renders ``html`` in headless chromium and returns the screenshot (H,W,3) uint8."""
    subprocess.run(
        [
            _chromium(),
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


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_a_browser(trained, tmp_path):
    ckpt, data = trained
    evaluate_checkpoint(ckpt, _data_config(data), "val", tmp_path / "eval", top_k=3)
    shot = screenshot(tmp_path / "eval" / "report.html", tmp_path / "report.png")
    assert shot.shape[0] >= 2000
    rows = shot.reshape(shot.shape[0], -1)
    drawn = (rows.std(axis=1) > 1).mean()  # rows that are not one flat colour: text, tables, pictures
    assert drawn > 0.4, f"only {drawn:.0%} of the page has content"
    colourful = (shot.max(axis=2).astype(int) - shot.min(axis=2)) > 60  # the galleries' colour masks
    assert colourful.mean() > 0.01
