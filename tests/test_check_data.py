"""check_data: every fault found, named with its file, non-zero exit; grey and RGBA images pass."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config
from helpers import TOY, make_pairs
from PIL import Image

from seglight.report.data_report import check_data


def run_check(
    images: Path,
    masks: Path,
    capsys,
    palette: Path | None = None,
    num_classes: int | None = None,
    plot: Path | None = None,
) -> tuple[int, str]:
    overrides = ["data=folder", f"data.images={images}", f"data.masks={masks}", "data.num_workers=0"]
    overrides += [f"data.palette={palette}"] if palette else [f"data.num_classes={num_classes}"]
    cfg = compose_config(overrides, "check_data")
    code = check_data(cfg.data, cfg.splits, str(plot) if plot else None)
    return code, capsys.readouterr().out.replace("\n", " ")


@pytest.fixture
def colour_set(tmp_path) -> tuple[Path, Path, Path]:
    images, masks = make_pairs(tmp_path, n=3)
    TOY.to_csv(tmp_path / "palette.csv")
    return images, masks, tmp_path / "palette.csv"


def test_clean_colour_data_passes_with_frequencies_and_chart(colour_set, capsys, tmp_path):
    images, masks, palette = colour_set
    code, out = run_check(images, masks, capsys, palette=palette, plot=tmp_path / "freq.png")
    assert code == 0, out
    assert "train: 3 pairs" in out and "64x48 (3)" in out and "no faults" in out
    assert (tmp_path / "freq.png").stat().st_size > 3000


def test_colour_not_in_palette(colour_set, capsys):
    images, masks, palette = colour_set
    mask = np.asarray(Image.open(masks / "img_001.png")).copy()
    mask[:2, :5] = (9, 9, 9)
    Image.fromarray(mask).save(masks / "img_001.png")
    code, out = run_check(images, masks, capsys, palette=palette)
    assert code == 1 and "img_001.png" in out and "(9, 9, 9) x10 px" in out


def test_index_out_of_range(tmp_path, capsys):
    images, masks = make_pairs(tmp_path, n=2, color_masks=False)
    mask = np.asarray(Image.open(masks / "img_000.png")).copy()
    mask[0, :7] = 9
    Image.fromarray(mask).save(masks / "img_000.png")
    code, out = run_check(images, masks, capsys, num_classes=3)
    assert code == 1 and "img_000.png" in out and "9 x7 px" in out


def test_size_mismatch(colour_set, capsys):
    images, masks, palette = colour_set
    Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(masks / "img_002.png")
    code, out = run_check(images, masks, capsys, palette=palette)
    assert code == 1 and "img_002.png is 64x48 but mask" in out and "is 40x30" in out


@pytest.mark.parametrize("remove, message", [("masks", "image without a mask"), ("images", "mask without an image")])
def test_unpaired(colour_set, capsys, remove, message):
    images, masks, palette = colour_set
    {"masks": masks, "images": images}[remove].joinpath("img_001.png").unlink()
    code, out = run_check(images, masks, capsys, palette=palette)
    assert code == 1 and message in out and "img_001.png" in out


def test_truncated_file(colour_set, capsys):
    images, masks, palette = colour_set
    data = (images / "img_000.png").read_bytes()
    (images / "img_000.png").write_bytes(data[: len(data) // 2])
    code, out = run_check(images, masks, capsys, palette=palette)
    assert code == 1 and "img_000.png" in out and "unreadable or truncated" in out


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    code, out = run_check(tmp_path / "images", tmp_path / "masks", capsys, num_classes=3)
    assert code == 1 and "no image files" in out and str(tmp_path / "images") in out


@pytest.mark.parametrize(
    "csv, message",
    [
        ("name,r,g,b\nbg,0,0,0\nred,0,0,0\n", "duplicate colour"),
        ("name,r,g,b\nbg,0,0,0\nbg,1,2,3\n", "duplicate class name"),
    ],
)
def test_bad_palette(colour_set, capsys, csv, message):
    images, masks, palette = colour_set
    palette.write_text(csv)
    code, out = run_check(images, masks, capsys, palette=palette)
    assert code == 1 and message in out and "palette.csv" in out


def test_grey_and_rgba_images_are_converted_not_faults(colour_set, capsys):
    images, masks, palette = colour_set
    Image.open(images / "img_000.png").convert("L").save(images / "img_000.png")
    Image.open(images / "img_001.png").convert("RGBA").save(images / "img_001.png")
    code, out = run_check(images, masks, capsys, palette=palette)
    assert code == 0, out


def test_cli_exit_code_and_file_named(colour_set, tmp_path):
    images, masks, palette = colour_set
    (masks / "img_002.png").unlink()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "seglight.check_data",
            "data=folder",
            f"data.images={images}",
            f"data.masks={masks}",
            f"data.palette={palette}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 1
    assert "image without a mask" in out.stdout and "img_002.png" in out.stdout


def test_training_names_the_bad_file(colour_set):
    """Training reads lazily; a bad mask surfaces as an error naming it, not as garbage."""
    from seglight.data.dataset import SegmentationDataset
    from seglight.data.palette import Palette

    images, masks, palette = colour_set
    mask = np.asarray(Image.open(masks / "img_000.png")).copy()
    mask[0, 0] = (1, 2, 3)
    Image.fromarray(mask).save(masks / "img_000.png")
    ds = SegmentationDataset(images, masks, 3, Palette.from_csv(palette))
    with pytest.raises(ValueError, match=r"img_000.png.*\(1, 2, 3\) x1 px"):
        ds[0]
