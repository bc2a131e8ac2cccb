"""check_data infer=true: from folders alone to a training command that trains, with void guessed for reasons."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from helpers import make_pairs
from hydra.utils import instantiate
from PIL import Image

from seglight.data.infer import hydra_value
from seglight.data.palette import Palette
from seglight.report.confusions import load_confusions
from seglight.report.data_report import infer_data

CLASS_COLORS = np.array([(40, 150, 40), (200, 30, 30), (30, 30, 200)], dtype=np.uint8)
VOID = 255


def make_void_pairs(root: Path, n: int = 10, size: int = 64, index_masks: bool = False) -> tuple[Path, Path]:
    """n pairs of a field (class 0) with two rectangles (classes 1, 2), void as a 3-pixel frame at the borders
    and a 2-pixel unlabelled gap around each rectangle: black in colour masks, 255 in index masks."""
    rng = np.random.default_rng(0)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i in range(n):
        index = np.zeros((size, size), dtype=np.uint8)
        for cls in (1, 2):
            (y, x), (h, w) = rng.integers(4, size // 2, 2), rng.integers(size // 5, size // 3, 2)
            index[y - 2 : y + h + 2, x - 2 : x + w + 2] = VOID
            index[y : y + h, x : x + w] = cls
        index[:3], index[-3:], index[:, :3], index[:, -3:] = VOID, VOID, VOID, VOID
        colour = np.where((index == VOID)[..., None], 0, CLASS_COLORS[index % VOID]).astype(np.uint8)
        noisy = colour.astype(int) + rng.integers(0, 60, (size, size, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(images / f"field_{i:02d}.jpg")
        Image.fromarray(index if index_masks else colour).save(masks / f"field_{i:02d}.png")
    return images, masks


def infer(images: Path, masks: Path, capsys, *extra: str) -> tuple[int, list[str]]:
    cfg = compose_config(
        ["data=folder", f"data.images={images}", f"data.masks={masks}", "infer=true", *extra], "check_data"
    )
    code = infer_data(cfg.data, cfg.output, cfg.infer_max_masks, cfg.seed)
    return code, capsys.readouterr().out.strip().splitlines()


def test_colour_folders_to_a_training_run_that_ignores_black(tmp_path):
    """A new user's folders (in a path with a space, given relative to the current directory) -> the printed
    command trains, with black as void: 3 classes in the checkpoint, black pixels scored nowhere."""
    images, masks = make_void_pairs(tmp_path / "my data")
    env = {**os.environ, "COLUMNS": "200"}
    wizard = [sys.executable, "-m", "seglight.check_data", "data=folder", "infer=true"]
    wizard += ["data.images=my data/images", "data.masks=my data/masks"]
    out = subprocess.run(wizard, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "void guessed: (0, 0, 0) (confidence" in out.stdout and "covers 100% of the image borders" in out.stdout
    assert "counting mask values" in out.stderr  # the progress bar
    palette = tmp_path / "my data" / "palette.csv"  # beside the masks folder
    assert Palette.from_csv(palette).void_colors == [(0, 0, 0)]
    command = shlex.split(out.stdout.strip().splitlines()[-1])
    assert command[:3] == ["python", "-m", "seglight.train"]
    assert f"data.palette={palette}" in command and f"data.images={images}" in command
    # tiny run: 1 epoch of 2 batches, no worker processes, crops the size of the images, csv logs only, a run dir
    tiny = [
        "trainer=debug",
        "data.num_workers=0",
        "data.crop_size=64",
        "logger=csv",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, *command[1:], *tiny], cwd=elsewhere, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    hparams = torch.load(tmp_path / "run/checkpoints/best.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["class_names"] == ["class_0", "class_1", "class_2"]
    assert sorted(map(tuple, hparams["colors"])) == sorted(map(tuple, CLASS_COLORS.tolist()))
    scored, confusions, _ = load_confusions(tmp_path / "run/val_confusions.npz")
    assert scored  # every val image scores exactly its non-black pixels
    for image, confusion in zip(scored, confusions):
        mask = np.asarray(Image.open(masks / f"{Path(image).stem}.png"))
        assert confusion.sum() == (mask.any(axis=2)).sum() < mask.shape[0] * mask.shape[1]


def test_index_masks_with_255_as_void(tmp_path, capsys):
    images, masks = make_void_pairs(tmp_path, n=4, index_masks=True)
    code, lines = infer(images, masks, capsys)
    assert code == 0, lines
    assert any(line.startswith("void guessed: 255 (confidence high): 255 is the usual void") for line in lines)
    assert "data.num_classes=3" in lines[-1] and "void_values" not in lines[-1] and "palette" not in lines[-1]
    assert not (tmp_path / "palette.csv").exists()
    overrides = shlex.split(lines[-1])[3:]
    dm = instantiate(compose_config(overrides).data, _convert_="all")  # the printed data config reads the masks
    assert set(np.unique(dm.raw_dataset("train").read_mask(0)).tolist()) == {0, 1, 2, VOID}


@pytest.mark.parametrize("colour", [True, False])
def test_no_void_guessed_without_signs(tmp_path, capsys, colour):
    """Black background as a real class (on the borders, but no more than on the rest of the image): a class."""
    images, masks = make_pairs(tmp_path, n=4, color_masks=colour)
    code, lines = infer(images, masks, capsys)
    assert code == 0, lines
    assert any(line.startswith("no void guessed") for line in lines)
    assert not any(line.startswith("void guessed") for line in lines)
    if colour:
        assert Palette.from_csv(tmp_path / "palette.csv").names == ["class_0", "class_1", "class_2"]
        assert Palette.from_csv(tmp_path / "palette.csv").void_colors == []
    else:
        assert lines[-1].endswith("data.num_classes=3")


def test_missing_folder_and_mask_without_image_are_named(tmp_path, capsys):
    images, masks = make_void_pairs(tmp_path, n=3)
    code, lines = infer(tmp_path / "nope", masks, capsys)
    assert code == 1 and f"{tmp_path / 'nope'}: folder not found" in "\n".join(lines)
    (images / "field_01.jpg").unlink()
    code, lines = infer(images, masks, capsys)
    assert code == 1 and f"{masks / 'field_01.png'}: mask without an image" in "\n".join(lines)
    assert not (tmp_path / "palette.csv").exists() and "train with:" not in lines


def test_many_masks_are_sampled_and_it_says_so(tmp_path, capsys):
    images, masks = make_void_pairs(tmp_path, n=6)
    code, lines = infer(images, masks, capsys, "infer_max_masks=4", "output=" + str(tmp_path / "out"))
    assert code == 0 and any("sampled 4 of 6 masks (drawn with seed=42" in line for line in lines)
    assert "colour mask values in 4 masks" in "\n".join(lines) and (tmp_path / "out/palette.csv").is_file()


@pytest.mark.parametrize("path", ["/data/a,b [1]/masks", "/data/it's/x", "/data/my data/x", "/data/{x}=y"])
def test_printed_paths_survive_hydra(path):
    assert compose_config(["data=folder", f"data.images={hydra_value(path)}", "data.masks=m"]).data.images == path


def test_no_void_guess_that_leaves_one_class_or_takes_a_large_black_background(tmp_path, capsys):
    """Binary 0/255 index masks: 255 is the foreground, not void -> a fault saying to remap it. Colour masks with
    centred objects on a black background (most pixels, all the borders): black stays a class."""
    rng = np.random.default_rng(1)
    for name, index_masks in (("binary", True), ("black_bg", False)):
        images, masks = tmp_path / name / "images", tmp_path / name / "masks"
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for i in range(6):
            index = np.zeros((64, 64), np.uint8)
            index[8:56, 8:40] = 1
            if not index_masks:  # black keeps all the borders and 46 % of the pixels
                index[8:56, 42:56] = 2
            mask = np.where(index == 1, 255, 0).astype(np.uint8) if index_masks else CLASS_COLORS[[2, 0, 1]][index]
            mask = np.where((index == 0)[..., None], 0, mask) if not index_masks else mask  # black background
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
            Image.fromarray(mask.astype(np.uint8)).save(masks / f"{i}.png")
        code, lines = infer(images, masks, capsys)
        if index_masks:
            assert code == 1 and any("remapped to 1" in line for line in lines)
        else:
            assert code == 0 and "no void guessed" in "\n".join(lines)
            assert lines[-1].endswith("palette.csv'") or "palette.csv" in lines[-1]
            assert "void" not in (masks.parent / "palette.csv").read_text()


def test_one_mask_of_the_other_kind_is_the_one_blamed(tmp_path):
    """An index mask first and colour masks after it: the index mask is the odd one. Before, the second kind joined
    the reference and every later mask, of either kind, became a fault."""
    from seglight.data.infer import count_values

    images, masks = make_void_pairs(tmp_path, n=6)
    index = np.asarray(Image.open(masks / "field_00.png").convert("L"))
    Image.fromarray((index > 0).astype(np.uint8)).save(masks / "field_00.png")  # an index mask among colour ones
    pairs = [(images / f"field_{i:02d}.jpg", masks / f"field_{i:02d}.png") for i in range(6)]
    census = count_values(pairs)
    odd = census.faults[0]
    assert odd.file.endswith("field_00.png") and "but 5 others are colour masks" in odd.problem
    assert len(census.faults) == 6 and all("field_00.png is a index mask" in f.problem for f in census.faults[1:])
    later = count_values([pairs[1], pairs[0], *pairs[2:]])  # the odd one second: only it is a fault
    assert [Path(f.file).name for f in later.faults] == ["field_00.png"] and later.masks_read == 5
