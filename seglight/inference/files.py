"""predict_files: images on disk -> <name>.png (index mask), <name>_color.png, <name>_overlay.png [+ probs,
entropy].

<name> is the input's path relative to its input root, without the extension (see ``input_root``), so a
recursive glob mirrors the sub-folders under the output. Outputs are written atomically (temporary file +
rename) and inputs whose outputs all exist are skipped, so an interrupted run over a folder resumes where
it stopped.
"""

from __future__ import annotations

import glob
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from matplotlib import colormaps
from PIL import Image
from tqdm import tqdm

from seglight.data.io import IMAGE_EXTENSIONS, DataError, image_size, read_image
from seglight.inference.large import STREAM_PIXELS, predict_large
from seglight.inference.predictor import Predictor
from seglight.report.figures import overlay
from seglight.util.files import atomic_write


def calibration_split(files: list[Path], n: int) -> tuple[list[Path], list[Path]]:
    """(calibrate, check): ``n`` of ``files`` spread evenly over the list, and the files halfway between them (up to
    n - 1) to check the calibrated model on images it was not fitted to: sorted names put a video's frames side by
    side, and a check frame next to a calibration frame would be a near copy of it. ``n`` files or fewer: all of
    them, for both."""
    if len(files) <= n:
        return files, files
    picked = np.linspace(0, len(files) - 1, n).round().astype(int).tolist()
    halfway = sorted({(a + b) // 2 for a, b in zip(picked, picked[1:])} - set(picked))
    return [files[i] for i in picked], [files[i] for i in halfway]  # len(files) > n: some gap holds a file


def list_inputs(spec: str) -> list[Path]:
    """A file, a folder (its images) or a glob pattern -> sorted image paths."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = sorted(
            Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS
        )
    if not files:
        raise DataError(f"{spec}: no input images (a file, a folder of {', '.join(IMAGE_EXTENSIONS)}, or a glob)")
    return files


def input_root(spec: str) -> Path:
    """The folder that output names mirror: a folder input itself, a file's folder, or a glob's leading
    folders before the first wildcard (``dir`` for ``dir/**/*.png``)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    fixed = []
    for part in path.parts:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def output_paths(output: Path, name: str, save_probs: bool, save_uncertainty: bool = False) -> dict[str, Path]:
    """The files written for one input; ``name`` is its path relative to the input root without the extension."""
    paths = {
        "index": output / f"{name}.png",
        "color": output / f"{name}_color.png",
        "overlay": output / f"{name}_overlay.png",
    }
    if save_probs:
        paths["probs"] = output / f"{name}_probs.npz"
    if save_uncertainty:
        paths["entropy"] = output / f"{name}_entropy.png"
    return paths


def plan_outputs(
    files: list[Path], root: Path, output: Path, save_probs: bool, save_uncertainty: bool = False
) -> dict[Path, dict[str, Path]]:
    """Each input's output paths, checked before anything is written: DataError if two inputs would write
    the same file (``a.jpg`` and ``a.png``; ``a.png`` and ``a_color.png``) or an output would overwrite an input.
    Paths are compared ignoring case, as macOS and Windows file systems do."""

    def key(p: Path) -> str:
        return str(p.resolve()).casefold()

    inputs = {key(f): f for f in files}
    writer: dict[str, Path] = {}
    plan = {}
    for f in files:
        plan[f] = output_paths(output, f.relative_to(root).with_suffix("").as_posix(), save_probs, save_uncertainty)
        for p in plan[f].values():
            k = key(p)
            if k in inputs:
                raise DataError(
                    f"{f}: output {p} would overwrite the input {inputs[k]}; "
                    "choose an output folder apart from the inputs"
                )
            if k in writer:
                raise DataError(
                    f"{writer[k]} and {f} would both write {p}: outputs are named by the input's name "
                    "without its extension (compared ignoring case); rename one of them or predict "
                    "them separately"
                )
            writer[k] = f
    return plan


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Probabilities (C,H,W) -> entropy (H,W) float32 divided by log C: 0 where one class has all the
    probability, 1 where all C classes are equally likely."""
    c = probs.shape[0]
    if c < 2:
        return np.zeros(probs.shape[1:], np.float32)
    p = np.clip(probs.astype(np.float64), 0.0, 1.0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)  # 0 log 0 = 0
    return np.clip(-plogp.sum(axis=0) / np.log(c), 0.0, 1.0).astype(np.float32)


def entropy_image(entropy: np.ndarray, cmap: str = "magma") -> np.ndarray:
    """Entropy (H,W) in [0,1] -> (H,W,3) uint8 RGB in the colour map (magma: black = sure, light = unsure)."""
    return colormaps[cmap](np.clip(entropy, 0.0, 1.0), bytes=True)[..., :3]


def write_outputs(
    paths: dict[str, Path], image: np.ndarray, index: np.ndarray, predictor: Predictor, probs: np.ndarray | None = None
) -> None:
    """Writes the index (H,W) uint8, colour and overlay PNGs for one image, and from its probabilities (C,H,W)
    the ``probs`` .npz and the ``entropy`` PNG where ``paths`` name them."""
    atomic_write(paths["index"], lambda f: Image.fromarray(index).save(f, format="PNG"))
    atomic_write(paths["color"], lambda f: Image.fromarray(predictor.palette.to_color(index)).save(f, format="PNG"))
    atomic_write(
        paths["overlay"], lambda f: Image.fromarray(overlay(image, index, predictor.palette)).save(f, format="PNG")
    )
    if "probs" not in paths and "entropy" not in paths:
        return
    if probs is None:
        raise ValueError(f"{paths['index']}: the probabilities and the entropy are written from the probabilities")
    if "entropy" in paths:
        rgb = entropy_image(predictive_entropy(probs))
        atomic_write(paths["entropy"], lambda f: Image.fromarray(rgb).save(f, format="PNG"))
    if "probs" in paths:
        atomic_write(
            paths["probs"],
            lambda f: np.savez_compressed(
                f, probs=probs.astype(np.float16), class_names=np.array(predictor.class_names)
            ),
        )


def _batches(files: list[Path], sizes: dict[Path, tuple[int, int]], batch_size: int) -> Iterable[list[Path]]:
    groups: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for f in files:
        groups[sizes[f]].append(f)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            yield group[i : i + batch_size]


def predict_files(
    predictor: Predictor,
    inputs: str,
    output: str | Path,
    batch_size: int = 4,
    save_probs: bool = False,
    overwrite: bool = False,
    save_uncertainty: bool = False,
    stream_pixels: int = STREAM_PIXELS,
) -> dict[str, int]:
    """Predicts every input image; images of equal size go through the model together. Returns counts.
    Images of more than ``stream_pixels`` pixels are predicted strip by strip (``predict_large``).

    Each input is predicted upright (its EXIF orientation applied) and its outputs have the size a viewer
    shows it at. Output names mirror the input's path under ``input_root(inputs)`` without the extension
    (``dir/**/*.png`` writes ``output/x/a.png`` for ``dir/x/a.png``); inputs whose outputs would collide
    (``a.jpg`` and ``a.png`` in one folder) or overwrite an input are refused up front, naming the files.
    ``save_probs`` adds ``<name>_probs.npz``, ``save_uncertainty`` ``<name>_entropy.png`` (``predictive_entropy``
    in the magma colour map).
    """
    output = Path(output)
    files = list_inputs(inputs)
    plan = plan_outputs(files, input_root(inputs), output, save_probs, save_uncertainty)
    output.mkdir(parents=True, exist_ok=True)
    todo = [f for f in files if overwrite or not all(p.exists() for p in plan[f].values())]
    channels = len(predictor.mean)  # 3: RGB pictures; other counts: multispectral files, read whole
    sizes = {f: image_size(f, channels) for f in todo}
    large = [f for f in todo if sizes[f][0] * sizes[f][1] > stream_pixels and channels == 3]
    with tqdm(total=len(todo), desc="predict", unit="img") as bar:
        for f in large:  # strip by strip, memory bounded by the tile size (seglight.inference.large)
            predict_large(predictor, f, plan[f])
            bar.update()
        streamed = set(large)
        for batch in _batches([f for f in todo if f not in streamed], sizes, batch_size):
            images = [read_image(f, channels) for f in batch]
            probs: list[np.ndarray] | list[None]
            if save_probs or save_uncertainty:
                probs = predictor.predict_images(images)
                masks = [p.argmax(axis=0).astype(np.uint8) for p in probs]
            else:
                probs, masks = [None] * len(images), predictor.predict_masks(images)
            for f, image, mask, p in zip(batch, images, masks, probs):
                write_outputs(plan[f], image, mask, predictor, p)
                bar.update()
    return {"inputs": len(files), "predicted": len(todo), "skipped": len(files) - len(todo)}


def predict_checkpoint(
    ckpt: str | Path,
    input: str,
    output: str | Path,
    batch_size: int = 4,
    save_probs: bool = False,
    overwrite: bool = False,
    save_uncertainty: bool = False,
    **predictor: Any,
) -> dict[str, int]:
    """``predict_files`` with the model at ``ckpt`` (a .ckpt or .onnx) run with ``predictor`` options (device,
    precision, tta, tile_size, tile_overlap: conf/predictor)."""
    model = Predictor.load(ckpt, **predictor)
    return predict_files(model, input, output, batch_size, save_probs, overwrite, save_uncertainty)
