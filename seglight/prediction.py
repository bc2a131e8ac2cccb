"""predict_files: images on disk -> <stem>.png (index mask), <stem>_color.png, <stem>_overlay.png [+ probs].

Outputs are written atomically (temporary file + rename) and inputs whose outputs all exist are skipped,
so an interrupted run over a folder resumes where it stopped.
"""

from __future__ import annotations

import glob
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image
from tqdm import tqdm

from seglight.data.io import IMAGE_EXTENSIONS, DataError, read_image
from seglight.files import atomic_write
from seglight.inference import Predictor
from seglight.visualize import overlay


def list_inputs(spec: str) -> list[Path]:
    """A file, a folder (its images) or a glob pattern -> sorted image paths."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{spec}: no input images (a file, a folder of {', '.join(IMAGE_EXTENSIONS)}, or a glob)")
    return files


def output_paths(output: Path, stem: str, save_probs: bool) -> dict[str, Path]:
    paths = {"index": output / f"{stem}.png", "color": output / f"{stem}_color.png",
             "overlay": output / f"{stem}_overlay.png"}
    if save_probs:
        paths["probs"] = output / f"{stem}_probs.npz"
    return paths


def write_outputs(paths: dict[str, Path], image: np.ndarray, index: np.ndarray, predictor: Predictor,
                  probs: np.ndarray | None = None) -> None:
    """Writes the index (H,W) uint8, colour and overlay PNGs (and probabilities (C,H,W)) for one image."""
    atomic_write(paths["index"], lambda f: Image.fromarray(index).save(f, format="PNG"))
    atomic_write(paths["color"], lambda f: Image.fromarray(predictor.palette.to_color(index)).save(f, format="PNG"))
    atomic_write(paths["overlay"], lambda f: Image.fromarray(overlay(image, index, predictor.palette)).save(f, format="PNG"))
    if probs is not None:
        atomic_write(paths["probs"], lambda f: np.savez_compressed(f, probs=probs.astype(np.float16),
                                                                   class_names=np.array(predictor.class_names)))


def _batches(files: list[Path], sizes: dict[Path, tuple[int, int]], batch_size: int) -> Iterable[list[Path]]:
    groups: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for f in files:
        groups[sizes[f]].append(f)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            yield group[i:i + batch_size]


def predict_files(predictor: Predictor, inputs: str, output: str | Path, batch_size: int = 4,
                  save_probs: bool = False, overwrite: bool = False) -> dict[str, int]:
    """Predicts every input image; images of equal size go through the model together. Returns counts."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    files = list_inputs(inputs)
    todo = [f for f in files if overwrite or not all(p.exists() for p in output_paths(output, f.stem, save_probs).values())]
    sizes = {}
    for f in todo:
        with Image.open(f) as im:
            sizes[f] = im.size
    with tqdm(total=len(todo), desc="predict", unit="img") as bar:
        for batch in _batches(todo, sizes, batch_size):
            images = [read_image(f) for f in batch]
            if save_probs:
                probs = predictor.predict_images(images)
                masks = [p.argmax(axis=0).astype(np.uint8) for p in probs]
            else:
                probs, masks = [None] * len(images), predictor.predict_masks(images)
            for f, image, mask, p in zip(batch, images, masks, probs):
                write_outputs(output_paths(output, f.stem, save_probs), image, mask, predictor, p)
                bar.update()
    return {"inputs": len(files), "predicted": len(todo), "skipped": len(files) - len(todo)}
