"""Properties of reading data and predicting, over random sizes, palettes, orientations and file modes (hypothesis)."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_io_trust import write_oriented

from seglight.data.io import read_image, read_mask
from seglight.data.palette import Palette
from seglight.data.transforms import to_input
from seglight.inference.predictor import TorchPredictor
from seglight.model.module import SegmentationModule

BOUNDED = settings(max_examples=20, deadline=None)
EDGE_SIZES = [(1, 1), (3, 300), (300, 3), (1, 33), (31, 65), (33, 97), (64, 64)]  # (H,W): odd, not /32, very wide
sizes = st.one_of(st.sampled_from(EDGE_SIZES), st.tuples(st.integers(1, 80), st.integers(1, 80)))
seeds = st.integers(0, 2**32 - 1)
colors = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))


@pytest.fixture(scope="module")
def module() -> SegmentationModule:
    return SegmentationModule(
        class_names=["a", "b", "c"], arch="Unet", encoder_name="resnet18", encoder_weights=None
    ).eval()


def predictor(module: SegmentationModule, **kwargs) -> TorchPredictor:
    return TorchPredictor(module, precision="32", **kwargs)


def random_image(seed: int, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@st.composite
def palettes(draw, max_void: int = 3) -> Palette:
    """Palettes of 1..8 classes, 0..max_void void colours (all colours distinct), ignore_index past the classes."""
    n = draw(st.integers(1, 8))
    v = draw(st.integers(0, max_void))
    cols = draw(st.lists(colors, min_size=n + v, max_size=n + v, unique=True))
    ignore = draw(st.integers(n, 255))
    return Palette([f"c{i}" for i in range(n)], cols[:n], ignore_index=ignore, void_colors=cols[n:])


# ---- prediction sizes -----------------------------------------------------------------------------------------------


@BOUNDED
@given(size=sizes, k=st.integers(1, 8), tile_size=st.sampled_from([64, 1024]), seed=seeds)
def test_predictions_have_the_displayed_input_size(module, size, k, tile_size, seed):
    """A file stored with EXIF orientation k: masks and probabilities come out at its upright (H,W)."""
    upright = random_image(seed, size)
    with tempfile.TemporaryDirectory() as tmp:
        image = read_image(write_oriented(Path(tmp) / "a.png", upright, k))
    np.testing.assert_array_equal(image, upright)
    pred = predictor(module, tile_size=tile_size)
    mask = pred.predict_masks([image])[0]
    assert mask.shape == size and mask.dtype == np.uint8 and mask.max() < 3
    probs = pred.predict_probs(to_input(image, pred.mean, pred.std))
    assert probs.shape == (1, 3, *size)
    np.testing.assert_allclose(probs.sum(dim=1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs[0].argmax(0).numpy(), mask)


# ---- palettes and masks ---------------------------------------------------------------------------------------------


@BOUNDED
@given(palette=palettes(), size=sizes, seed=seeds)
def test_colour_index_colour_round_trip(palette, size, seed):
    """Class colours map to their index and back; every void colour maps to ignore_index and back to void_colors[0]."""
    n, every = palette.num_classes, palette.colors + palette.void_colors
    drawn = np.random.default_rng(seed).integers(0, len(every), size)  # < n: class, else a void colour
    rgb = np.array(every, dtype=np.uint8)[drawn]
    index = palette.to_index(rgb)
    np.testing.assert_array_equal(index, np.where(drawn < n, drawn, palette.ignore_index))
    painted = np.where((drawn < n)[..., None], rgb, palette.void_colors[0] if palette.void_colors else (0, 0, 0))
    np.testing.assert_array_equal(palette.to_color(index), painted)


@BOUNDED
@given(palette=palettes(), size=sizes, data=st.data())
def test_all_void_and_single_class_colour_masks_read_back(palette, size, data):
    choices = [("class", c) for c in range(palette.num_classes)] + [("void", c) for c in palette.void_colors]
    kind, value = data.draw(st.sampled_from(choices))
    colour = palette.colors[value] if kind == "class" else value
    expected = value if kind == "class" else palette.ignore_index
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.png"
        Image.fromarray(np.full((*size, 3), colour, dtype=np.uint8)).save(path)
        mask = read_mask(path, palette.num_classes, palette, palette.ignore_index)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, np.full(size, expected))


@BOUNDED
@given(num_classes=st.integers(1, 254), size=sizes, data=st.data())
def test_all_void_and_single_class_index_masks_read_back(num_classes, size, data):
    ignore = data.draw(st.integers(num_classes, 255))
    void = data.draw(st.integers(num_classes, 255))
    value = data.draw(st.sampled_from([void, ignore, data.draw(st.integers(0, num_classes - 1))]))
    expected = ignore if value in (void, ignore) else value
    mode = data.draw(st.sampled_from(["L", "P", "I;16"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.png"
        arr = np.full(size, value, dtype=np.uint16 if mode == "I;16" else np.uint8)
        img = Image.fromarray(arr)
        if mode == "P":
            img = img.convert("P")
            img.putpalette(list(range(256)) * 3)
            img.putdata(arr.ravel().tolist())
        img.save(path)
        assert Image.open(path).mode == mode
        mask = read_mask(path, num_classes, ignore_index=ignore, void_values=(void,))
    np.testing.assert_array_equal(mask, np.full(size, expected))


# ---- image files ----------------------------------------------------------------------------------------------------


@BOUNDED
@given(size=sizes, k=st.integers(1, 8), seed=seeds)
def test_exif_orientation_turns_images_and_masks_upright(size, k, seed):
    rng = np.random.default_rng(seed)
    upright = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, size, dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        np.testing.assert_array_equal(read_image(write_oriented(Path(tmp) / "a.png", upright, k)), upright)
        np.testing.assert_array_equal(read_mask(write_oriented(Path(tmp) / "m.png", labels, k), 5), labels)


@BOUNDED
@given(
    size=sizes, mode=st.sampled_from(["L", "I;16", "RGBA", "P", "RGB"]), fmt=st.sampled_from(["png", "tif"]), seed=seeds
)
def test_image_modes_read_as_rgb_uint8(size, mode, fmt, seed):
    """8/16-bit grey, RGBA and palette files -> (H,W,3) uint8: grey repeated (16-bit divided by 257 and rounded),
    alpha dropped, palette indices turned into their colours."""
    rng = np.random.default_rng(seed)
    if mode == "L":
        arr = rng.integers(0, 256, size, dtype=np.uint8)
        img, expected = Image.fromarray(arr), np.repeat(arr[..., None], 3, axis=2)
    elif mode == "I;16":
        arr = rng.integers(0, 65536, size, dtype=np.uint16)
        grey = np.round(arr / 257).astype(np.uint8)
        img, expected = Image.fromarray(arr), np.repeat(grey[..., None], 3, axis=2)
    elif mode == "RGBA":
        arr = rng.integers(0, 256, (*size, 4), dtype=np.uint8)
        img, expected = Image.fromarray(arr), arr[..., :3]
    elif mode == "P":
        table = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        indices = rng.integers(0, 256, size, dtype=np.uint8)
        img = Image.fromarray(indices, mode="L").convert("P")
        img.putpalette(table.ravel().tolist())
        img.putdata(indices.ravel().tolist())
        expected = table[indices]
    else:
        expected = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        img = Image.fromarray(expected)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"a.{fmt}"
        img.save(path)
        assert Image.open(path).mode == mode
        image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (*size, 3)
    np.testing.assert_array_equal(image, expected)


# ---- sliding windows and flip TTA -----------------------------------------------------------------------------------


@BOUNDED
@given(tile=st.sampled_from([32, 64, 96]), data=st.data(), seed=seeds)
def test_one_window_equals_the_whole_image(module, tile, data, seed):
    size = (data.draw(st.integers(1, tile)), data.draw(st.integers(1, tile)))
    image = random_image(seed, size)
    x = to_input(image, module.hparams.mean, module.hparams.std)
    tiled, whole = predictor(module, tile_size=tile), predictor(module, tile_size=4096)
    np.testing.assert_allclose(tiled.predict_probs(x).numpy(), whole.predict_probs(x).numpy(), atol=1e-6)
    np.testing.assert_array_equal(tiled.predict_masks([image])[0], whole.predict_masks([image])[0])


def check_tta_unflips(module, size: tuple[int, int], seed: int) -> None:
    pred = predictor(module, tta=True)
    image = random_image(seed, size)
    probs = pred.predict_probs(to_input(image, pred.mean, pred.std))
    flipped = pred.predict_probs(to_input(image[:, ::-1].copy(), pred.mean, pred.std))
    np.testing.assert_allclose(flipped.numpy(), probs.flip(-1).numpy(), atol=1e-5)


@BOUNDED
@given(size=sizes, seed=seeds)
@example(size=(32, 33), seed=0)  # padding on the right of the image, on the left of its mirror, before the fix
def test_flip_tta_unflips_any_width(module, size, seed):
    check_tta_unflips(module, size, seed)
