"""data.cache_images: decoded once, memory-mapped after, re-decoded when the file changes, size said up front."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import make_pairs
from PIL import Image

from seglight.data import dataset as dataset_module
from seglight.data import image_cache
from seglight.data.datamodule import SegDataModule


def _dm(images, masks, cache_dir, **kw) -> SegDataModule:
    return SegDataModule(
        str(images), str(masks), num_classes=3, val_fraction=0.25, num_workers=0, cache_dir=str(cache_dir), **kw
    )


def test_cached_images_equal_decoded_ones_and_are_not_decoded_again(tmp_path, monkeypatch, caplog):
    images, masks = make_pairs(tmp_path / "data", n=4, color_masks=False)
    plain = _dm(images, masks, tmp_path / "c0")
    plain.setup("fit")
    with caplog.at_level("INFO"):
        cached = _dm(images, masks, tmp_path / "c1", cache_images=True)
        cached.setup("fit")
    assert "4 images" in caplog.text and "MiB still to decode" in caplog.text  # the size, said before filling it
    raw_plain, raw_cached = plain.raw_dataset("train"), cached.raw_dataset("train")
    decoded = [raw_plain.read_image(i) for i in range(len(raw_plain))]
    for i, expected in enumerate(decoded):
        assert np.array_equal(raw_cached.read_image(i), expected)  # first read: decodes and stores
    assert len(list((tmp_path / "c1" / "images").glob("*.npy"))) == len(decoded)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(dataset_module, "read_image", no_decoding)
    for i, expected in enumerate(decoded):
        again = raw_cached.read_image(i)
        assert again.flags.writeable and np.array_equal(again, expected)
    sample = cached.datasets["train"][0]  # the augmented path reads through the cache as well
    assert sample["image"].shape[0] == 3
    monkeypatch.undo()

    first = raw_cached.pairs[0][0]
    stamp = first.stat()
    Image.fromarray(np.full((48, 64, 3), 7, np.uint8)).save(first)  # replaced, its old mtime put back (cp -p)
    os.utime(first, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert (raw_cached.read_image(0) == 7).all()

    one_image = 48 * 64 * 3  # the replaced image is the one not cached; all four would not fit
    monkeypatch.setattr(image_cache.shutil, "disk_usage", lambda _: type("U", (), {"free": 2 * one_image + 1})())
    again = _dm(images, masks, tmp_path / "c1", cache_images=True)
    again.setup("fit")  # only what is not cached yet needs room, so not refused
    assert again.datasets["train"].image_cache is not None


def test_a_cache_larger_than_the_free_disk_is_refused_naming_the_folder(tmp_path, monkeypatch):
    images, masks = make_pairs(tmp_path / "data", n=4, color_masks=False)
    monkeypatch.setattr(image_cache.shutil, "disk_usage", lambda _: type("U", (), {"free": 1000})())
    dm = _dm(images, masks, tmp_path / "small", cache_images=True)
    with pytest.raises(ValueError, match="small/images.*cache_images=false"):
        dm.setup("fit")
