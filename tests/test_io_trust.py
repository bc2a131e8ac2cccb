"""Trustworthy numbers from files: EXIF orientation, 16-bit and float images, 8-bit labels, and predict
outputs that never collide."""

from pathlib import Path

import numpy as np
import pytest
from helpers import TOY
from PIL import Image

import seglight.inference.files as prediction
from seglight.data.dataset import SegmentationDataset
from seglight.data.io import DataError, read_image, read_mask
from seglight.data.palette import Palette, default_colors
from seglight.inference.files import predict_files
from seglight.inference.predictor import TorchPredictor
from seglight.model.module import SegmentationModule

ORIENTATION = 0x0112


def stored_pixels(upright: np.ndarray, k: int) -> np.ndarray:
    """The pixels a camera stores for the picture ``upright`` (H,W[,3]) when it tags it with EXIF orientation k.

    Defined from the EXIF standard with numpy alone (no Pillow), so the test does not share the code it checks:
    orientation 6 means "rotate 90 degrees clockwise to display", so the stored pixels are the upright picture
    turned 90 degrees counter-clockwise (``np.rot90``), and so on."""
    swap = (1, 0, 2) if upright.ndim == 3 else (1, 0)
    return {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(swap),
        6: lambda a: np.rot90(a, 1),
        7: lambda a: a[::-1, ::-1].transpose(swap),
        8: lambda a: np.rot90(a, -1),
    }[k](upright)


def write_oriented(path: Path, upright: np.ndarray, k: int, **save_kwargs) -> Path:
    """Writes ``upright`` as a file whose stored pixels a viewer turns upright with EXIF orientation k."""
    exif = Image.Exif()
    exif[ORIENTATION] = k
    Image.fromarray(np.ascontiguousarray(stored_pixels(upright, k))).save(path, exif=exif, **save_kwargs)
    return path


def blocks(h: int, w: int, seed: int = 0, block: int = 16) -> np.ndarray:
    """(h,w) uint8 class indices 0..2 in flat block x block squares (flat 8x8 DCT blocks survive JPEG)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 3, (h // block, w // block), dtype=np.uint8)
    small[0, 0], small[0, -1], small[-1, 0], small[-1, -1] = 1, 0, 2, 0  # no flip or turn maps it to itself
    return np.kron(small, np.ones((block, block), dtype=np.uint8))


@pytest.fixture(scope="module")
def predictor() -> TorchPredictor:
    module = SegmentationModule(
        class_names=["a", "b", "c"], arch="Unet", encoder_name="resnet18", encoder_weights=None
    ).eval()
    return TorchPredictor(module, precision="32")


def test_predict_refuses_a_precision_it_would_not_run(predictor):
    with pytest.raises(ValueError, match=r"precision='bf16-true': predict runs auto, 32-true, 32, bf16-mixed"):
        TorchPredictor(predictor.module, precision="bf16-true")


# ---- EXIF orientation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(1, 9))
def test_read_image_applies_exif_orientation_png(tmp_path, k):
    rng = np.random.default_rng(k)
    upright = rng.integers(0, 256, (5, 9, 3), dtype=np.uint8)
    path = write_oriented(tmp_path / "a.png", upright, k)
    np.testing.assert_array_equal(read_image(path), upright)


@pytest.mark.parametrize("k", range(1, 9))
def test_read_image_applies_exif_orientation_jpeg(tmp_path, k):
    upright = TOY.to_color(blocks(32, 48))
    path = write_oriented(tmp_path / "a.jpg", upright, k, quality=95, subsampling=0)
    image = read_image(path)
    assert image.shape == (32, 48, 3)
    assert np.abs(image.astype(int) - upright).max() <= 4


@pytest.mark.parametrize("k", range(1, 9))
def test_read_mask_applies_exif_orientation(tmp_path, k):
    upright = blocks(32, 48, seed=k, block=8)
    index = write_oriented(tmp_path / "index.png", upright, k)
    colour = write_oriented(tmp_path / "colour.png", TOY.to_color(upright), k)
    np.testing.assert_array_equal(read_mask(index, num_classes=3), upright)
    np.testing.assert_array_equal(read_mask(colour, num_classes=3, palette=TOY), upright)


@pytest.mark.parametrize("k", range(1, 9))
def test_phone_jpeg_stays_aligned_with_mask_drawn_upright(tmp_path, k):
    """A phone photo (EXIF orientation k) and a mask drawn on the photo as displayed (no EXIF)."""
    upright = blocks(32, 48, seed=k)
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    write_oriented(images / "p.jpg", TOY.to_color(upright), k, quality=95, subsampling=0)
    Image.fromarray(TOY.to_color(upright)).save(masks / "p.png")
    image, mask = SegmentationDataset(images, masks, num_classes=3, palette=TOY).read_pair(0)
    np.testing.assert_array_equal(mask, upright)
    assert np.abs(image.astype(int) - TOY.to_color(mask)).max() <= 4


def test_predict_writes_masks_at_the_displayed_size(tmp_path, predictor):
    """A portrait phone picture stored landscape (orientation 6) beside a landscape one of the same stored size:
    each output has its displayed (H,W) and is the prediction of the upright picture."""
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)  # displayed H=48, W=32; stored 48 wide
    landscape = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)  # displayed and stored 48 wide
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_oriented(inputs / "portrait.png", portrait, 6)
    write_oriented(inputs / "landscape.png", landscape, 1)
    predict_files(predictor, str(inputs), tmp_path / "out", batch_size=4)
    for name, upright in (("portrait", portrait), ("landscape", landscape)):
        for suffix in ("", "_color", "_overlay"):
            written = np.asarray(Image.open(tmp_path / "out" / f"{name}{suffix}.png"))
            assert written.shape[:2] == upright.shape[:2], (name, suffix)
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        np.testing.assert_array_equal(written, predictor.predict_masks([upright])[0])


# ---- value ranges -------------------------------------------------------------------------------------------------


def test_read_image_scales_16_bit_grey(tmp_path):
    values = np.array([[0, 257, 257 * 128, 65535, 1000, 65535 - 128]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    expected = np.round(values / 257).astype(np.uint8)  # 0, 1, 128, 255, 4, 255
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), np.repeat(expected[..., None], 3, axis=2))


@pytest.mark.parametrize(
    "values, expected",
    [
        ([[0, 257, 257 * 200, 65535]], [[0, 1, 200, 255]]),  # 16-bit values: divided by 257
        ([[0, 51000, 100000, 100000]], [[0, 130, 255, 255]]),  # beyond 16 bits: the image's min..max
        ([[-100, 10, 60, 100]], [[0, 140, 204, 255]]),
    ],
)
def test_read_image_scales_32_bit_int(tmp_path, values, expected):
    Image.fromarray(np.array(values, dtype=np.int32)).save(tmp_path / "a.tif")
    assert Image.open(tmp_path / "a.tif").mode == "I"
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif")[..., 0], expected)


@pytest.mark.parametrize(
    "values, expected",
    [
        ([[0.0, 0.5, 1.0, 0.25]], [[0, 128, 255, 64]]),  # in [0,1]: times 255
        ([[-2.0, 0.0, 6.0, 2.0]], [[0, 64, 255, 128]]),  # otherwise: the image's min..max
        ([[7.0, 7.0]], [[0, 0]]),  # constant outside [0,1]: zeros
    ],
)
def test_read_image_scales_float(tmp_path, values, expected):
    Image.fromarray(np.array(values, dtype=np.float32)).save(tmp_path / "a.tif")
    assert Image.open(tmp_path / "a.tif").mode == "F"
    image = read_image(tmp_path / "a.tif")
    assert image.dtype == np.uint8 and image.shape == (*np.shape(values), 3)
    np.testing.assert_array_equal(image[..., 0], expected)
    np.testing.assert_array_equal(image[..., 2], expected)


def test_read_image_refuses_non_finite_float(tmp_path):
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(DataError, match=r"nan\.tif.*not finite"):
        read_image(tmp_path / "nan.tif")


def test_palette_refuses_more_than_255_classes():
    names = [f"c{i}" for i in range(300)]
    with pytest.raises(ValueError, match=r"300 classes.*at most 255.*8-bit"):
        Palette(names, default_colors(300))
    assert Palette(names[:255], default_colors(255)).num_classes == 255  # 0..254 and ignore_index 255 fit


@pytest.mark.parametrize("ignore_index", [-100, -1, 256, 1000])
def test_palette_refuses_ignore_index_outside_8_bit(ignore_index):
    with pytest.raises(ValueError, match=rf"ignore_index {ignore_index} .*0\.\.255.*use ignore_index=255"):
        Palette(["a", "b"], [(0, 0, 0), (1, 1, 1)], ignore_index=ignore_index)


def test_palette_refuses_ignore_index_of_a_class_naming_the_fix():
    with pytest.raises(ValueError, match=r"ignore_index 1 collides with class 'b'.*use ignore_index=255"):
        Palette(["a", "b"], [(0, 0, 0), (1, 1, 1)], ignore_index=1)


def test_read_mask_refuses_labels_that_would_wrap(tmp_path):
    """A 16-bit index mask holding class 280 of 300 would come back as 280 % 256 = 24."""
    Image.fromarray(np.array([[0, 280]], dtype=np.uint16)).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"300 classes.*at most 255"):
        read_mask(tmp_path / "m.png", num_classes=300)
    with pytest.raises(ValueError, match=r"ignore_index -100 .*use ignore_index=255"):
        read_mask(tmp_path / "m.png", num_classes=3, ignore_index=-100)


def test_to_color_paints_unknown_indices_with_the_void_colour():
    pal = Palette(["a", "b"], [(10, 10, 10), (20, 20, 20)], void_colors=[(1, 2, 3)])
    np.testing.assert_array_equal(
        pal.to_color(np.array([[0, 1, 255, 7]])), [[[10, 10, 10], [20, 20, 20], [1, 2, 3], [1, 2, 3]]]
    )


# ---- predict outputs never collide --------------------------------------------------------------------------------


@pytest.fixture
def recorded_writes(monkeypatch) -> list[Path]:
    """Every path predict_files writes, in order."""
    written: list[Path] = []
    real = prediction.atomic_write

    def record(path, write, **kwargs):
        written.append(Path(path))
        return real(path, write, **kwargs)

    monkeypatch.setattr(prediction, "atomic_write", record)
    return written


@pytest.mark.parametrize("names", [("a.jpg", "a.png"), ("a.png", "a_color.png")])
def test_predict_refuses_inputs_whose_outputs_collide(tmp_path, predictor, recorded_writes, names):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(inputs / name)
    with pytest.raises(DataError, match=rf"{names[0]}.*{names[1]}.*rename"):
        predict_files(predictor, str(inputs), tmp_path / "out")
    assert recorded_writes == []


def test_predict_refuses_to_write_over_its_inputs(tmp_path, predictor, recorded_writes):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a\.png.*overwrite the input"):
        predict_files(predictor, str(tmp_path), tmp_path)
    assert recorded_writes == []
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)


def test_predict_recursive_glob_mirrors_subfolders(tmp_path, predictor, recorded_writes):
    """dir/**/*.png with a.png in two sub-folders: out/x/a.png and out/y/a.png, each its own image's prediction."""
    rng = np.random.default_rng(0)
    pictures = {
        "x/a": rng.integers(0, 256, (32, 64, 3), dtype=np.uint8),
        "y/a": rng.integers(0, 256, (32, 64, 3), dtype=np.uint8),
        "b": rng.integers(0, 256, (32, 64, 3), dtype=np.uint8),
    }
    for name, picture in pictures.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(tmp_path / "in" / f"{name}.png")
    counts = predict_files(predictor, str(tmp_path / "in" / "**" / "*.png"), tmp_path / "out", save_probs=True)
    assert counts == {"inputs": 3, "predicted": 3, "skipped": 0}
    assert len(recorded_writes) == len(set(recorded_writes)) == 3 * 4
    for name, picture in pictures.items():
        expected = predictor.predict_images([picture])[0]
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        np.testing.assert_array_equal(written, expected.argmax(0))
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{name}_probs.npz")["probs"], expected, atol=1e-3)
        for suffix in ("_color.png", "_overlay.png"):
            assert (tmp_path / "out" / f"{name}{suffix}").is_file()
    assert (
        predict_files(predictor, str(tmp_path / "in" / "**" / "*.png"), tmp_path / "out", save_probs=True)["skipped"]
        == 3
    )


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
def test_lossy_index_masks_are_refused_naming_the_file(tmp_path, suffix):
    """JPEG noise on an index mask stays in 0..num_classes-1 often enough to pass the range check: refuse the format
    (this one decodes to valid indices, 0..10, with some of them wrong)."""
    path = tmp_path / f"m{suffix}"
    Image.fromarray(blocks(32, 48, block=4)).save(path, quality=75)
    decoded = np.asarray(Image.open(path))
    assert decoded.max() <= 10 and (decoded != blocks(32, 48, block=4)).any()
    with pytest.raises(DataError, match=rf"m{suffix}: .*lossy.*PNG"):
        read_mask(path, num_classes=11)
    images = tmp_path / "images"  # a folder of them: refused when the dataset is built, before any epoch
    images.mkdir()
    for name in ("m", "n"):
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(images / f"{name}.png")
    path.with_name(f"n{suffix}").write_bytes(path.read_bytes())
    with pytest.raises(DataError, match=rf"m{suffix} \(and 1 more\): .*lossy"):
        SegmentationDataset(images, tmp_path, num_classes=11)


def test_cached_class_counts_notice_a_mask_replaced_with_its_stamp_kept(tmp_path):
    """``cp -p`` keeps size and mtime: the counts cached for the old labels must not be reused."""
    import os

    from seglight.data.class_stats import cached_pixel_counts

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / "a.png")
    np.save(masks / "a.npy", np.zeros((4, 4), np.uint8))
    ds = SegmentationDataset(images, masks, num_classes=3)
    assert cached_pixel_counts(ds, {"n": 3}, tmp_path / "cache").tolist() == [16, 0, 0]
    stat = (masks / "a.npy").stat()
    np.save(masks / "a.npy", np.full((4, 4), 2, np.uint8))
    os.utime(masks / "a.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (masks / "a.npy").stat().st_size == stat.st_size
    assert cached_pixel_counts(ds, {"n": 3}, tmp_path / "cache").tolist() == [0, 0, 16]
