"""Multispectral input: N-channel TIFF/.npy images, model.in_channels=N, data.mean/std=auto in the checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image

from seglight.data import class_stats
from seglight.data.datamodule import SegDataModule
from seglight.data.io import DataError, image_size, read_channels, read_image
from seglight.data.transforms import IMAGENET_MEAN, display_rgb

CHANNELS = 5


def write_scene(root: Path, n: int = 8, size=(40, 56), seed: int = 0) -> tuple[Path, Path]:
    """n 5-channel uint16 scenes (TIFF (H,W,5), band-first TIFF, .npy in turn) and index masks: the class is
    visible only in channel 3 (not one of the first three), the others are noise at different offsets/scales."""
    rng = np.random.default_rng(seed)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i in range(n):
        mask = np.zeros(size, np.uint8)
        mask[5:25, 10:30] = 1
        mask[20:35, 30:50] = 2
        mask = np.roll(mask, int(rng.integers(0, 20)), axis=1)
        bands = [rng.normal(1000 + 500 * c, 50 + 20 * c, size) for c in range(CHANNELS)]
        bands[3] = bands[3] + 800.0 * mask
        scene = np.clip(np.stack(bands, axis=-1), 0, 65535).astype(np.uint16)  # (H,W,5)
        if i % 3 == 0:
            tifffile.imwrite(images / f"s{i:02d}.tif", scene)
        elif i % 3 == 1:
            tifffile.imwrite(images / f"s{i:02d}.tif", scene.transpose(2, 0, 1))  # band-first
        else:
            np.save(images / f"s{i:02d}.npy", scene)
        Image.fromarray(mask).save(masks / f"s{i:02d}.png")
    return images, masks


def test_read_channels_takes_each_layout_and_names_the_file_it_refuses(tmp_path):
    scene = np.random.default_rng(0).integers(0, 4000, (12, 20, CHANNELS)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "hwc.tif", scene)
    tifffile.imwrite(tmp_path / "chw.tif", scene.transpose(2, 0, 1))
    np.save(tmp_path / "hwc.npy", scene)
    np.save(tmp_path / "chw.npy", scene.transpose(2, 0, 1))
    for name in ("hwc.tif", "chw.tif", "hwc.npy", "chw.npy"):
        got = read_channels(tmp_path / name, CHANNELS)
        assert got.dtype == np.float32 and got.shape == (12, 20, CHANNELS), name
        assert np.array_equal(got, scene.astype(np.float32)), name
        assert image_size(tmp_path / name, CHANNELS) == (20, 12), name  # (width, height) from the header
    with pytest.raises(DataError, match=r"hwc\.tif.*4 channels"):
        read_channels(tmp_path / "hwc.tif", 4)
    bad = scene.astype(np.float32)
    bad[0, 0, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"nan\.npy.*not finite"):
        read_channels(tmp_path / "nan.npy", CHANNELS)


def _data(images: Path, masks: Path, *overrides: str):
    return compose_config(
        [
            "data=folder",
            f"data.images={images}",
            f"data.masks={masks}",
            "data.num_classes=3",
            "data.val_fraction=0.25",
            "data.crop_size=32",
            "data.batch_size=4",
            "data.eval_batch_size=2",
            "data.num_workers=0",
            "trainer=debug",
            "logger=csv",
            f"model.in_channels={CHANNELS}",
            *overrides,
        ]
    )


def test_mean_auto_is_measured_on_the_training_images_only_and_cached(tmp_path, monkeypatch):
    images, masks = write_scene(tmp_path / "data")
    dm = instantiate(_data(images, masks, "data.mean=auto", "data.std=auto").data, _convert_="all")
    assert dm.in_channels == CHANNELS  # from model.in_channels
    train = [read_channels(p, CHANNELS).astype(np.float64) for p, _ in dm.split_pairs("train")]
    pixels = np.concatenate([t.reshape(-1, CHANNELS) for t in train])
    assert len(train) == 6  # 2 of 8 held out for val: not measured
    np.testing.assert_allclose(dm.mean, pixels.mean(0), rtol=1e-6)
    np.testing.assert_allclose(dm.std, pixels.std(0), rtol=1e-5)
    assert dm.mean[4] > 2500 and dm.std[3] > 300  # raw units, not /255

    def fail(_):
        raise AssertionError("measured again instead of read from the cache")

    monkeypatch.setattr(class_stats, "channel_stats", fail)
    again = instantiate(_data(images, masks).data, _convert_="all")  # null: auto for 5 channels
    assert again.mean == dm.mean and again.std == dm.std

    again.setup("fit")
    batch = next(iter(again.train_dataloader()))
    assert batch["image"].shape == (4, CHANNELS, 32, 32)
    per_channel = batch["image"].transpose(0, 1).reshape(CHANNELS, -1)
    assert per_channel.mean(1).abs().max() < 1.0 and (per_channel.std(1) - 1).abs().max() < 1.0  # normalised


def test_channel_counts_must_agree(tmp_path):
    images, masks = write_scene(tmp_path / "data", n=4)
    with pytest.raises(ValueError, match="data.mean has 3 values for 5 input channels"):
        SegDataModule(str(images), str(masks), num_classes=3, in_channels=CHANNELS, mean=[0.1, 0.2, 0.3])
    rgb = instantiate(_data(images, masks, "model.in_channels=3").data, _convert_="all")
    assert rgb.mean == IMAGENET_MEAN  # RGB keeps ImageNet's unless told auto
    for name in ("s00.tif", "s01.tif", "s02.npy"):  # (H,W,5), band-first and .npy: never read as a picture
        with pytest.raises(DataError, match=rf"{name}.*model.in_channels"):
            read_image(images / name)


def test_display_rgb_stretches_multispectral_and_keeps_rgb():
    rgb = np.random.default_rng(0).integers(0, 255, (8, 9, 3)).astype(np.uint8)
    assert display_rgb(rgb) is rgb
    scene = np.random.default_rng(1).normal(2000, 300, (8, 9, CHANNELS)).astype(np.float32)
    shown = display_rgb(scene)
    assert shown.shape == (8, 9, 3) and shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255


def test_train_predict_evaluate_a_five_channel_model(tmp_path):
    from seglight.inference.evaluation import evaluate_checkpoint
    from seglight.inference.files import predict_checkpoint
    from seglight.model.checkpoint import load_module
    from seglight.training.fit import train

    images, masks = write_scene(tmp_path / "data")
    cfg = _data(images, masks, "trainer.max_epochs=2", "trainer.limit_train_batches=2", "model=unet")
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path / "run")
    result = train(cfg)
    module = load_module(result["best_ckpt"])
    assert module.hp.in_channels == CHANNELS and len(module.hp.mean) == CHANNELS
    dm = instantiate(cfg.data, _convert_="all")
    np.testing.assert_allclose(module.hp.mean, dm.mean)  # the measured normalisation travels with the model
    assert module.model.encoder.conv1.in_channels == CHANNELS

    counts = predict_checkpoint(result["best_ckpt"], str(images), tmp_path / "pred", precision="32")
    assert counts["predicted"] == 8
    index = np.asarray(Image.open(tmp_path / "pred" / "s02.png"))
    assert index.shape == (40, 56) and index.max() < 3
    overlay = np.asarray(Image.open(tmp_path / "pred" / "s02_overlay.png"))
    assert overlay.shape == (40, 56, 3)

    data = OmegaConf.to_container(cfg.data, resolve=True)  # plain values, as the command passes them
    data["in_channels"] = 3  # the evaluate command's data config has no model group: the model's channels win
    metrics = evaluate_checkpoint(result["best_ckpt"], data, "val", tmp_path / "eval", top_k=1, precision="32")
    assert 0.0 <= metrics["mIoU"] <= 1.0 and (tmp_path / "eval" / "report.html").exists()
    with torch.no_grad():
        assert torch.isfinite(module(torch.zeros(1, CHANNELS, 32, 32))).all()


def test_multispectral_crops_pad_with_the_mean_and_match_prediction_units():
    from seglight.data.transforms import to_input, train_transform

    rng = np.random.default_rng(0)
    scene = rng.normal(3000, 100, (24, 24, CHANNELS)).astype(np.float32)  # smaller than the crop: padded
    mean, std = [3000.0] * CHANNELS, [100.0] * CHANNELS
    t = train_transform(32, scale=(1.0, 1.0), hflip=0.0, mean=mean, std=std, channels=CHANNELS, seed=0)
    out = t(image=scene, mask=np.zeros((24, 24), np.uint8))
    x, m = out["image"], torch.as_tensor(out["mask"])
    assert x.shape == (CHANNELS, 32, 32)
    assert x[:, m == 255].abs().max() == 0  # padding is the mean, 0 once normalised (raw 0 would be -30)
    inside = x[:, m != 255].reshape(CHANNELS, -1)
    expected = to_input(scene, mean, std)[0].reshape(CHANNELS, -1)
    assert torch.allclose(inside.sort(dim=1).values, expected.sort(dim=1).values, atol=1e-4)  # the same units


def test_odd_files_are_read_or_refused_by_name(tmp_path):
    from seglight.data.io import read_image

    rgb = np.random.default_rng(0).integers(0, 255, (6, 7, 3)).astype(np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    assert image_size(tmp_path / "rgb.npy") == (7, 6) and np.array_equal(read_image(tmp_path / "rgb.npy"), rgb)
    la = np.zeros((6, 7, 2), np.uint8)  # grey + alpha: still a picture
    tifffile.imwrite(tmp_path / "la.tif", la, photometric="minisblack", extrasamples=["unassalpha"])
    assert read_image(tmp_path / "la.tif").shape == (6, 7, 3)
    np.save(tmp_path / "square.npy", np.zeros((CHANNELS, 9, CHANNELS), np.float32))
    with pytest.raises(DataError, match="square.npy.*alike"):
        read_channels(tmp_path / "square.npy", CHANNELS)


def test_a_tiff_rewritten_with_more_bands_is_refused_though_its_header_was_read_before(tmp_path):
    """The TIFF header is parsed once per version of a file: a rewrite (new size, time) is parsed again."""
    path = tmp_path / "scene.tif"
    tifffile.imwrite(path, np.zeros((6, 7, 3), np.uint8), photometric="rgb")
    assert read_image(path).shape == (6, 7, 3) and read_image(path).shape == (6, 7, 3)
    tifffile.imwrite(path, np.zeros((6, 7, CHANNELS), np.uint16), photometric="minisblack", planarconfig="contig")
    with pytest.raises(DataError, match=r"scene\.tif: an array of shape \(6, 7, 5\).*model.in_channels"):
        read_image(path)
    assert read_channels(path, CHANNELS).shape == (6, 7, CHANNELS) and image_size(path, CHANNELS) == (7, 6)
    # same size and modification time, as `cp -p` leaves them: the change time still tells the versions apart
    stat = path.stat()
    tifffile.imwrite(path, np.zeros((7, 6, CHANNELS), np.uint16), photometric="minisblack", planarconfig="contig")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and image_size(path, CHANNELS) == (6, 7)  # (width, height) anew


def test_check_data_reads_multispectral_pairs(tmp_path):
    from seglight.report.data_report import check_data

    images, masks = write_scene(tmp_path / "data", n=3)
    cfg = _data(images, masks).data
    assert check_data(cfg, splits=("train",)) == 0  # every pair read as 5 channels, no faults


def test_a_resumed_run_keeps_the_normalisation_it_started_with(tmp_path):
    from seglight.model.checkpoint import load_checkpoint
    from seglight.training.fit import train

    images, masks = write_scene(tmp_path / "data", n=6)

    def cfg(epochs: int, *extra: str):
        c = _data(images, masks, f"trainer.max_epochs={epochs}", "trainer.limit_train_batches=1", "model=unet", *extra)
        with open_dict(c):
            c.run_dir = str(tmp_path / "run")
        return c

    train(cfg(1))
    started = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["hyper_parameters"]["mean"]
    bright = np.full((40, 56, CHANNELS), 60000, np.uint16)  # a new file that would move the measured mean a lot
    tifffile.imwrite(images / "s99.tif", bright)
    Image.fromarray(np.zeros((40, 56), np.uint8)).save(masks / "s99.png")
    train(cfg(2, "resume=true"))
    resumed = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 1 and resumed["hyper_parameters"]["mean"] == started


def test_a_multispectral_tiff_stored_turned_is_refused_not_misaligned(tmp_path):
    """Masks are turned upright by their orientation tag; multispectral TIFFs are read as stored. A band stack
    tagged as turned (orientation 3: rotated 180 degrees, same width and height) would pass the size check and
    misalign with its mask: refused, naming the file."""
    bands = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    tifffile.imwrite(tmp_path / "upright.tif", bands)
    assert read_channels(tmp_path / "upright.tif", 4).shape == (2, 3, 4)
    tifffile.imwrite(tmp_path / "turned.tif", bands, extratags=[(274, "H", 1, 3, False)])
    with pytest.raises(DataError, match=r"turned.tif: TIFF orientation 3"):
        read_channels(tmp_path / "turned.tif", 4)
