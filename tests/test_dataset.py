import numpy as np
import pytest
import torch
from helpers import TOY, make_pairs
from PIL import Image

from seglight.data.datamodule import SegDataModule
from seglight.data.dataset import SegmentationDataset
from seglight.data.io import DataError, read_mask
from seglight.data.synthetic import ShapesDataModule
from seglight.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, seeded, to_input, train_transform
from seglight.model.tiling import padded


def test_batch_shapes_and_dtypes(tmp_path):
    """The shape table: image (B,3,H,W) float, mask (B,H,W) long, values in classes or ignore."""
    images, masks = make_pairs(tmp_path, n=6, size=(50, 70))
    TOY.to_csv(tmp_path / "palette.csv")
    dm = SegDataModule(
        str(images),
        str(masks),
        palette=str(tmp_path / "palette.csv"),
        val_fraction=0.34,
        crop_size=32,
        batch_size=2,
        eval_batch_size=2,
        num_workers=0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, 32, 32) and batch["mask"].dtype == torch.int64
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (2, 3, 50, 70)  # val images keep their size: the model pads (as predict does)
    assert val["mask"].shape == (2, 50, 70) and set(val["mask"].unique().tolist()) <= {0, 1, 2, 255}
    assert len(dm.datasets["train"]) == 4 and len(dm.datasets["val"]) == 2


def test_image_and_mask_stay_aligned_under_train_augmentations(tmp_path):
    """Image pixels are the palette colour of their class: after random scale/crop/flip they must still be."""
    images, masks = make_pairs(tmp_path, n=3, size=(96, 128))
    tf = train_transform(64, scale=(0.5, 2.0), hflip=0.5, color_jitter=0.0)
    ds = SegmentationDataset(images, masks, 3, TOY, tf)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    colors = torch.tensor(TOY.colors, dtype=torch.float32)  # (C,3)
    for seed in range(12):
        seeded(tf, seed)  # albumentations 2 has its own generator
        sample = ds[seed % 3]
        rgb = (sample["image"] * std + mean) * 255  # (3,H,W)
        nearest = ((rgb.permute(1, 2, 0)[..., None, :] - colors).norm(dim=-1)).argmin(-1)  # (H,W)
        mask = sample["mask"]
        valid = mask != 255
        agree = (nearest[valid] == mask[valid]).float().mean()
        assert agree > 0.95, f"seed {seed}: image and mask disagree on {1 - agree:.1%} of pixels"


def test_pairs_by_stem_not_by_position(tmp_path):
    images, masks = make_pairs(tmp_path, n=3)
    (images / "img_001.png").rename(images / "zzz.png")
    (masks / "img_001.png").rename(masks / "zzz.png")
    ds = SegmentationDataset(images, masks, 3, TOY)
    assert [p[0].stem for p in ds.pairs] == [p[1].stem for p in ds.pairs] == ["img_000", "img_002", "zzz"]


def test_unpaired_file_is_named(tmp_path):
    images, masks = make_pairs(tmp_path, n=2)
    (masks / "img_001.png").unlink()
    with pytest.raises(DataError, match="image without a mask: .*img_001.png"):
        SegmentationDataset(images, masks, 3, TOY)


def test_size_mismatch_names_both_files(tmp_path):
    images, masks = make_pairs(tmp_path, n=1, size=(32, 32))
    Image.fromarray(np.zeros((20, 32, 3), dtype=np.uint8)).save(masks / "img_000.png")
    ds = SegmentationDataset(images, masks, 3, TOY)
    with pytest.raises(DataError, match=r"img_000.png is 32x32.*img_000.png is 32x20"):
        ds[0]


def test_index_mask_values_checked_and_void_mapped(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 1, 11], [7, 2, 255]], dtype=np.uint8)).save(path)
    with pytest.raises(DataError, match=r"m.png.*7 x1 px"):
        read_mask(path, num_classes=3, void_values=(11,))
    Image.fromarray(np.array([[0, 1, 11], [2, 2, 255]], dtype=np.uint8)).save(path)
    np.testing.assert_array_equal(read_mask(path, 3, void_values=(11,)), [[0, 1, 255], [2, 2, 255]])


def test_palette_mode_png_read_as_indices_not_grey(tmp_path):
    """convert('L') would turn palette index 2 into a grey level; masks must be read as stored."""
    img = Image.fromarray(np.array([[0, 2], [1, 2]], dtype=np.uint8), mode="L").convert("P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png", 3), [[0, 2], [1, 2]])


def test_eval_transform_keeps_the_size_and_normalises_like_predict():
    image = np.random.default_rng(0).integers(0, 256, (33, 65, 3), dtype=np.uint8)
    out = eval_transform()(image=image, mask=np.full((33, 65), 2, np.uint8))
    assert tuple(out["image"].shape) == (3, 33, 65) and tuple(out["mask"].shape) == (33, 65)
    torch.testing.assert_close(out["image"], to_input(image, IMAGENET_MEAN, IMAGENET_STD)[0])
    assert out["mask"].dtype == torch.int64 and (out["mask"] == 2).all()


def test_padded_reflects_the_image_and_crops_the_output_back():
    image = torch.rand(1, 3, 40, 50)
    seen = {}

    def fn(x):
        seen["x"] = x
        return x[:, :2] * 2

    out = padded(fn, image, 32)
    x = seen["x"]  # (1,3,64,64)
    assert tuple(x.shape) == (1, 3, 64, 64) and tuple(out.shape) == (1, 2, 40, 50)
    torch.testing.assert_close(x[0, :, 40, :50], image[0, :, 38])  # row 40 mirrors row 38
    torch.testing.assert_close(x[0, :, :40, 50], image[0, :, :, 48])
    torch.testing.assert_close(out, image[:, :2] * 2)


def test_shapes_data_is_generated_once_with_colour_masks(tmp_path):
    dm = ShapesDataModule(root=str(tmp_path), num_train=4, num_val=2, image_size=64, num_workers=0)
    mask = np.asarray(Image.open(dm.root / "train" / "masks" / "00000.png"))
    assert mask.shape == (64, 64, 3)
    assert {tuple(c) for c in mask.reshape(-1, 3)} <= set(dm.palette.colors)
    stamp = (dm.root / "COMPLETE").stat().st_mtime_ns
    ShapesDataModule(root=str(tmp_path), num_train=4, num_val=2, image_size=64, num_workers=0)
    assert (dm.root / "COMPLETE").stat().st_mtime_ns == stamp


def test_median_frequency_class_weights(tmp_path):
    images, masks = make_pairs(tmp_path, n=4, color_masks=False)
    dm = SegDataModule(str(images), str(masks), num_classes=3, val_fraction=0.0, num_workers=0)
    counts = dm.pixel_counts()
    freq = counts / counts.sum()
    np.testing.assert_allclose(dm.class_weights(), np.median(freq) / freq, rtol=1e-5)
    np.testing.assert_allclose(dm.class_weights(power=0.5), np.sqrt(np.median(freq) / freq), rtol=1e-5)
    assert counts.sum() == 4 * 48 * 64


def test_cached_masks_are_decoded_once_and_identical(tmp_path, monkeypatch):
    images, masks = make_pairs(tmp_path, n=3, size=(40, 60))
    plain = SegmentationDataset(images, masks, TOY.num_classes, palette=TOY)
    cached = SegmentationDataset(images, masks, TOY.num_classes, palette=TOY, cache_masks=True)
    calls = []
    real_to_index = TOY.to_index
    monkeypatch.setattr(TOY, "to_index", lambda *a, **k: calls.append(1) or real_to_index(*a, **k))
    for _ in range(3):  # three "epochs"
        for i in range(3):
            torch.testing.assert_close(cached[i]["mask"], plain[i]["mask"])
    assert len(calls) == 3 * 3 + 3  # the plain set decodes every time, the cached one once per mask


def test_shapes_data_refuses_classes_of_its_own(tmp_path):
    with pytest.raises(ValueError, match="brings its own classes: drop data.num_classes"):
        ShapesDataModule(root=str(tmp_path), num_train=2, num_val=1, image_size=32, num_workers=0, num_classes=3)


def test_strong_photometric_changes_colours_not_labels(tmp_path):
    """data.photometric=strong recolours the image (more than basic does) and leaves the mask as it was."""
    images, masks = make_pairs(tmp_path, n=2, size=(64, 64))
    plain = SegmentationDataset(images, masks, 3, TOY, train_transform(64, (1.0, 1.0), 0.0, 0.0))
    change = {}
    for kind in ("basic", "strong"):
        tf = train_transform(64, (1.0, 1.0), hflip=0.0, color_jitter=1.0, photometric=kind)
        ds = SegmentationDataset(images, masks, 3, TOY, tf)
        diffs = []
        for seed in range(20):
            seeded(tf, seed)
            a, b = plain[seed % 2], ds[seed % 2]
            assert torch.equal(a["mask"], b["mask"])
            diffs.append((a["image"] - b["image"]).abs().mean().item())
        change[kind] = sum(diffs) / len(diffs)
    assert change["basic"] > 0.05 and change["strong"] > 1.2 * change["basic"], change
    with pytest.raises(ValueError, match="data.photometric='vivid'"):
        train_transform(64, photometric="vivid")


def test_focus_crop_draws_a_present_focus_class_uniformly_and_keeps_alignment():
    """A big class 1 region and a 2x2 class 2 spot: focus crops hold class 1 or class 2 about equally often (one
    present class drawn uniformly, not by pixel count); random crops almost never hold the spot."""
    image = np.zeros((240, 320, 3), np.uint8)
    mask = np.zeros((240, 320), np.uint8)
    mask[:120, :80] = 1
    mask[200:202, 300:302] = 2
    image[mask == 1], image[mask == 2] = (200, 0, 0), (0, 200, 0)

    def spot_share(focus: float) -> tuple[float, float]:
        tf = train_transform(
            48, (1.0, 1.0), hflip=0.0, color_jitter=0.0, focus_crop=focus, focus_classes=[1, 2], seed=0
        )
        spot, both = 0, 0
        for _ in range(400):
            out = tf(image=image, mask=mask)
            m, green = out["mask"], out["image"][1] > 1.0  # green channel normalised: only the spot is green
            assert torch.equal(m == 2, green), "image and mask misaligned"
            spot += bool((m == 2).any())
            both += bool((m == 1).any() or (m == 2).any())
        return spot / 400, both / 400

    spot, focus_any = spot_share(1.0)
    assert focus_any == 1.0 and 0.4 < spot < 0.6, spot  # uniform over the 2 classes; by pixels it would be 0.04 %
    spot_random, _ = spot_share(0.0)
    assert spot_random < 0.05, spot_random
    spot_half, _ = spot_share(0.5)
    assert 0.15 < spot_half < 0.35, spot_half


def test_focus_classes_are_class_names_and_unknown_ones_fail_naming_the_option(tmp_path):
    images, masks = make_pairs(tmp_path, n=3, size=(32, 32))
    TOY.to_csv(tmp_path / "palette.csv")
    args = dict(palette=str(tmp_path / "palette.csv"), val_fraction=0.34, num_workers=0, focus_crop=0.5)
    dm = SegDataModule(str(images), str(masks), focus_classes=[TOY.names[2], TOY.names[1]], **args)
    assert dm.augment["focus_classes"] == [2, 1]
    with pytest.raises(ValueError, match=rf"data.focus_classes: no class 'Pole'; the classes are {TOY.names[0]}"):
        SegDataModule(str(images), str(masks), focus_classes=["Pole"], **args)
    with pytest.raises(ValueError, match=r"data.focus_crop=0.5 needs data.focus_classes"):
        SegDataModule(str(images), str(masks), **args)


def _flips_and_scales(tf, n: int = 300, seeds=None) -> tuple[np.ndarray, np.ndarray]:
    """Whether each of ``n`` passes of ``tf`` flipped, and the scale it drew; ``seeds``: index -> the seed
    ``tf`` takes before that pass (the dataset's per-sample seeding)."""
    tf.save_applied_params = True
    image, mask = np.zeros((48, 48, 3), np.uint8), np.zeros((48, 48), np.uint8)
    flips, scales = [], []
    for i in range(n):
        if seeds is not None:
            seeded(tf, seeds(i))
        applied = dict(tf(image=image, mask=mask)["applied_transforms"])
        flips.append("HorizontalFlip" in applied)
        scales.append(applied["RandomScale"]["scale"])
    return np.array(flips), np.array(scales)


def test_augmentations_draw_independently_of_each_other():
    """Seeding every step of a pipeline alike (albumentations 2: Compose(seed=...), set_random_seed, which each
    DataLoader worker called) makes steps that draw one number each draw the same one: crops were flipped exactly
    when zoomed out. All steps now share one generator, seeded once in the pipeline and again for each sample."""
    from seglight.data.loaders import EpochDraws

    tf = train_transform(32, scale=(0.6, 1.2), hflip=0.5, color_jitter=0.5, seed=7)
    for reseeded in (False, True):
        # reseeded: what the training dataset does before each sample
        flips, scales = _flips_and_scales(tf, seeds=EpochDraws(7) if reseeded else None)
        zoomed_out = scales < 0.9
        assert 0.4 < flips.mean() < 0.6
        # independent: flipped about half the time among zoomed-out and zoomed-in crops alike (coupled: 1 and 0)
        assert 0.3 < flips[zoomed_out].mean() < 0.7 and 0.3 < flips[~zoomed_out].mean() < 0.7, reseeded
    again = train_transform(32, scale=(0.6, 1.2), hflip=0.5, color_jitter=0.5, seed=7)
    first = train_transform(32, scale=(0.6, 1.2), hflip=0.5, color_jitter=0.5, seed=7)
    assert np.array_equal(_flips_and_scales(again, 50)[1], _flips_and_scales(first, 50)[1])  # still reproducible
