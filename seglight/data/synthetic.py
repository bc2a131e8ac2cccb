"""The embedded default data set: coloured shapes on textured backgrounds.

Classes: background, circle, square, triangle. Each shape class has a hue family (circles red,
squares green, triangles blue; hue, saturation and brightness jittered) on a low-saturation
textured background, so a model learns the classes from colour and form within minutes on a CPU:
it is a smoke test of the whole pipeline, not a benchmark. Masks are written as RGB colour masks
through the palette, so the default run exercises the same colour-mask path as a user's data.
Generation is seeded and cached.
"""

from __future__ import annotations

import colorsys
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from seglight.data.datamodule import SegDataModule
from seglight.data.palette import Palette

SHAPES_PALETTE = Palette(
    names=["background", "circle", "square", "triangle"],
    colors=[(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200)],
)


CLASS_HUES = {1: 0.0, 2: 1 / 3, 3: 0.62}  # red circles, green squares, blue triangles


def _shape_color(rng: np.random.Generator, cls: int) -> tuple[int, int, int]:
    hue = (CLASS_HUES[cls] + rng.uniform(-0.06, 0.06)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
    return int(rgb[0] * 255), int(rgb[1] * 255), int(rgb[2] * 255)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured low-saturation background (H,W,3) uint8: a tinted grey gradient, stripes and noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(50, 190) + rng.uniform(-12, 12, size=3)
    grad = rng.uniform(-40, 40, size=(2, 1))
    img = base + xx[..., None] * grad[0] + yy[..., None] * grad[1]
    freq, angle = rng.uniform(4, 16), rng.uniform(0, np.pi)
    stripes = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    img += stripes[..., None] * rng.uniform(5, 25)
    img += rng.normal(0, rng.uniform(3, 15), size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_sample(rng: np.random.Generator, size: int = 128, max_shapes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """One sample: image (H,W,3) uint8 and index mask (H,W) uint8 with values 0..3."""
    image = Image.fromarray(_background(rng, size))
    mask = Image.new("L", (size, size), 0)
    draw_i, draw_m = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        cls = int(rng.integers(1, 4))
        r = rng.uniform(0.08, 0.2) * size
        cx, cy = rng.uniform(r, size - r, size=2)
        color = _shape_color(rng, cls)
        if cls == 1:
            box = [cx - r, cy - r, cx + r, cy + r]
            draw_i.ellipse(box, fill=color)
            draw_m.ellipse(box, fill=cls)
        elif cls == 2:
            a = rng.uniform(0, np.pi / 2)
            pts = [(cx + r * np.cos(a + k * np.pi / 2), cy + r * np.sin(a + k * np.pi / 2)) for k in range(4)]
            draw_i.polygon(pts, fill=color)
            draw_m.polygon(pts, fill=cls)
        else:
            a = rng.uniform(0, 2 * np.pi)
            pts = [(cx + r * np.cos(a + k * 2 * np.pi / 3), cy + r * np.sin(a + k * 2 * np.pi / 3)) for k in range(3)]
            draw_i.polygon(pts, fill=color)
            draw_m.polygon(pts, fill=cls)
    return np.asarray(image), np.asarray(mask)


def write_shapes(
    root: str | Path, splits: dict[str, int], size: int = 128, seed: int = 0, palette: Palette = SHAPES_PALETTE
) -> Path:
    """Writes ``root/<split>/images/*.png`` and colour masks ``root/<split>/masks/*.png``; returns root.

    Writes into a temporary folder renamed at the end, so an interrupted run leaves no half data set
    and processes started together (DDP ranks) do not trip over each other; a complete folder is reused.
    """
    root = Path(root)
    if (root / "COMPLETE").exists():
        return root
    tmp = root.with_name(f"{root.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    total = sum(splits.values())
    with tqdm(total=total, desc=f"generating shapes -> {root}", leave=False) as bar:
        for s, (split, n) in enumerate(splits.items()):
            rng = np.random.default_rng([seed, s])
            (tmp / split / "images").mkdir(parents=True)
            (tmp / split / "masks").mkdir(parents=True)
            for i in range(n):
                image, index = render_sample(rng, size)
                Image.fromarray(image).save(tmp / split / "images" / f"{i:05d}.png")
                Image.fromarray(palette.to_color(index)).save(tmp / split / "masks" / f"{i:05d}.png")
                bar.update()
    palette.to_csv(tmp / "palette.csv")
    (tmp / "COMPLETE").touch()
    try:
        tmp.rename(root)
    except OSError:  # another process finished first
        if not (root / "COMPLETE").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return root


class ShapesDataModule(SegDataModule):
    """The embedded default: procedurally generated shapes (see seglight.data.synthetic), colour masks."""

    def __init__(
        self,
        root: str = "~/.cache/seglight",
        num_train: int = 512,
        num_val: int = 128,
        num_test: int = 0,
        image_size: int = 128,
        data_seed: int = 0,
        **kwargs,
    ) -> None:
        name = f"shapes-{num_train}-{num_val}-{num_test}-{image_size}-s{data_seed}"
        self.root = Path(root).expanduser() / name
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}  # images per split
        d = {
            s: (str(self.root / s / "images"), str(self.root / s / "masks")) if n > 0 else (None, None)
            for s, n in self.sizes.items()
        }
        self.image_size = image_size
        self.data_seed = data_seed
        kwargs.setdefault("crop_size", image_size)
        given = sorted({"palette", "class_names", "colors", "num_classes"} & set(kwargs))
        if given:
            raise ValueError(f"the shapes data brings its own classes: drop data.{', data.'.join(given)}")
        kwargs.update(palette=None, class_names=SHAPES_PALETTE.names, colors=SHAPES_PALETTE.colors)
        super().__init__(*d["train"], *d["val"], *d["test"], **kwargs)
        self.is_color = True  # masks are written as colours through the palette
        self.generate()

    def generate(self) -> None:
        write_shapes(
            self.root, {k: v for k, v in self.sizes.items() if v > 0}, self.image_size, self.data_seed, self.palette
        )

    def prepare_data(self) -> None:
        self.generate()
