"""predict save_uncertainty=true: <stem>_entropy.png, the softmax entropy / log C in the magma colour map."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglight.inference.files import entropy_image, predict_files, predictive_entropy
from seglight.inference.predictor import Predictor


@pytest.fixture(scope="module")
def ckpt(trained_tiny) -> Path:
    return trained_tiny[0]


def test_entropy_is_one_where_uniform_zero_where_sure_and_scaled_by_log_c():
    probs = np.zeros((4, 2, 3), np.float32)  # (C,H,W)
    probs[:, 0, 0] = 0.25  # uniform over 4 classes
    probs[2, 0, 1] = 1.0  # sure
    probs[[0, 1], 0, 2] = 0.5  # two classes: log 2 / log 4
    probs[:, 1, 0] = [0.97, 0.01, 0.01, 0.01]  # one class dominates
    probs[:, 1, 1] = [0.4, 0.3, 0.2, 0.1]
    probs[[1, 3], 1, 2] = [0.9, 0.1]
    h = predictive_entropy(probs)
    assert h.shape == (2, 3) and h.dtype == np.float32
    assert h[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert h[0, 1] == 0.0  # 0 log 0 counts 0: no NaN
    assert h[0, 2] == pytest.approx(0.5, abs=1e-6)
    expected = -sum(p * math.log(p) for p in (0.4, 0.3, 0.2, 0.1)) / math.log(4)
    assert h[1, 1] == pytest.approx(expected, abs=1e-6)
    assert h[1, 0] < 0.15 < h[1, 1] < h[0, 0]
    assert h[1, 2] == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(4), abs=1e-6)


def test_entropy_colours_run_from_dark_to_light():
    rgb = entropy_image(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert rgb.shape == (1, 3, 3) and rgb.dtype == np.uint8
    brightness = rgb.astype(int).sum(-1)[0]
    assert brightness[0] < 30 and brightness[0] < brightness[1] < brightness[2] and brightness[2] > 600


def test_predict_writes_the_entropy_at_the_image_size_and_resumes(ckpt, tmp_path):
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for h, w in ((50, 70), (64, 96)):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(inputs / f"img_{h}x{w}.png")
    predictor = Predictor.load(ckpt)
    out = tmp_path / "pred"
    assert predict_files(predictor, str(inputs), out)["predicted"] == 2
    assert not list(out.glob("*_entropy.png"))  # off by default
    # asking for it later redoes the inputs that lack it; then they are done
    assert predict_files(predictor, str(inputs), out, save_uncertainty=True)["predicted"] == 2
    assert predict_files(predictor, str(inputs), out, save_uncertainty=True)["skipped"] == 2
    for h, w in ((50, 70), (64, 96)):
        image = np.asarray(Image.open(inputs / f"img_{h}x{w}.png"))
        written = np.asarray(Image.open(out / f"img_{h}x{w}_entropy.png"))
        assert written.shape == (h, w, 3) and written.dtype == np.uint8
        probs = predictor.predict_image(image)  # (C,H,W)
        np.testing.assert_array_equal(written, entropy_image(predictive_entropy(probs)))
        index = np.asarray(Image.open(out / f"img_{h}x{w}.png"))
        np.testing.assert_array_equal(index, probs.argmax(0))  # the mask comes from the same probabilities


def test_predict_cli_save_uncertainty(ckpt, tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    out = tmp_path / "pred"
    res = subprocess.run(
        [sys.executable, "-m", "seglight.predict", f"ckpt={ckpt}", f"input={tmp_path / 'a.png'}", f"output={out}"]
        + ["save_uncertainty=true"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert np.asarray(Image.open(out / "a_entropy.png")).shape == (40, 60, 3)
    assert sorted(p.name for p in out.glob("a*.png")) == ["a.png", "a_color.png", "a_entropy.png", "a_overlay.png"]
