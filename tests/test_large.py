"""Large images streamed strip by strip predict what the whole-image sliding windows predict."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from seglight.inference.files import predict_files
from seglight.inference.large import StripSource
from seglight.inference.predictor import Predictor


@pytest.fixture
def scene(tmp_path):
    """A 300x420 image (smooth colour blobs) as PNG and as an uncompressed TIFF written in 64-row strips."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize((420, 300), Image.Resampling.BILINEAR))
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(image).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", image, photometric="rgb", rowsperstrip=64)
    return image, folder


def test_tiff_strips_are_read_in_place(scene):
    image, folder = scene
    source = StripSource(folder / "b.tif")
    assert source._whole is None and source.shape == (300, 420)  # read from the file's bytes, not decoded
    np.testing.assert_array_equal(source.rows(37, 190), image[37:190])
    assert StripSource(folder / "a.png")._whole is not None  # PNG: decoded whole
    turned = folder / "turned.tif"  # EXIF/TIFF orientation 6 (a quarter turn): decoded upright, not read in place
    tifffile.imwrite(turned, image, photometric="rgb", extratags=[(274, "H", 1, 6, False)])
    source = StripSource(turned)
    assert source._whole is not None and source.shape == (420, 300)
    ycbcr = folder / "ycbcr.tif"  # not RGB bytes: decoded by PIL, not read as if RGB
    tifffile.imwrite(ycbcr, image, photometric="ycbcr", subsampling=(1, 1))
    assert StripSource(ycbcr)._whole is not None


def test_streamed_outputs_equal_whole_image_prediction(trained_tiny, scene, tmp_path):
    image, folder = scene
    predictor = Predictor.load(trained_tiny[0], precision="32", tile_size=128)
    whole = predict_files(predictor, str(folder), tmp_path / "whole", stream_pixels=10**9)
    streamed = predict_files(predictor, str(folder), tmp_path / "streamed", stream_pixels=0)
    assert whole["predicted"] == streamed["predicted"] == 2
    expected = predictor.predict_masks([image])[0]  # the sliding-window rule of predict and evaluate
    for name in ("a", "b"):
        for suffix in ("", "_color", "_overlay"):
            a = np.asarray(Image.open(tmp_path / "whole" / f"{name}{suffix}.png"))
            b = np.asarray(Image.open(tmp_path / "streamed" / f"{name}{suffix}.png"))
            assert a.shape == b.shape and (a == b).mean() > 0.9999, (name, suffix, (a == b).mean())
        streamed_mask = np.asarray(Image.open(tmp_path / "streamed" / f"{name}.png"))
        assert (streamed_mask == expected).mean() > 0.9999


def test_streaming_refuses_outputs_it_cannot_write(trained_tiny, scene, tmp_path):
    _, folder = scene
    predictor = Predictor.load(trained_tiny[0], tile_size=128)
    with pytest.raises(ValueError, match="probs are not written for an image this large"):
        predict_files(predictor, str(folder / "b.tif"), tmp_path / "out", save_probs=True, stream_pixels=0)
