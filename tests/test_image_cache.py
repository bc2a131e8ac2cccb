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


def test_a_new_reader_version_recounts_the_cached_statistics(tmp_path, monkeypatch):
    """Class counts and channel statistics are cached by file stamps; when decoding changes (the reader version),
    what was counted with the old reader must not be read back."""
    from seglight.data import class_stats, io
    from seglight.data.dataset import SegmentationDataset

    images, masks = make_pairs(tmp_path / "data", n=3, color_masks=False)
    dataset = SegmentationDataset(images, masks, num_classes=3)
    calls = []
    real = class_stats.pixel_counts
    monkeypatch.setattr(class_stats, "pixel_counts", lambda d: calls.append(1) or real(d))
    first = class_stats.cached_pixel_counts(dataset, {"n": 3}, tmp_path / "stats")
    class_stats.cached_pixel_counts(dataset, {"n": 3}, tmp_path / "stats")
    assert len(calls) == 1  # read back
    monkeypatch.setattr(io, "READER_VERSION", io.READER_VERSION + 1)
    again = class_stats.cached_pixel_counts(dataset, {"n": 3}, tmp_path / "stats")
    assert len(calls) == 2 and np.array_equal(first, again)  # counted anew
