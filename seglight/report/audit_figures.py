"""Pictures of the label audit: an image, its label and the model's prediction, each with the disputed regions
outlined (their contours traced by OpenCV), for the gallery of audit.html."""

from __future__ import annotations

import cv2
import numpy as np

from seglight.data.palette import Palette
from seglight.data.transforms import display_rgb

OUTLINE = (255, 230, 0)  # yellow traced over a dark rim: readable on photos and on any palette colour
RIM = (20, 20, 20)
MIN_WIDTH = 240  # smaller images are enlarged (nearest neighbour) to at least this width before drawing


def display_scale(width: int) -> int:
    """The integer factor that enlarges an image ``width`` pixels wide to at least ``MIN_WIDTH``."""
    return max(1, -(-MIN_WIDTH // max(width, 1)))


def enlarge(picture: np.ndarray, scale: int) -> np.ndarray:
    """(H,W[,3]) -> (scale*H, scale*W[,3]), each pixel repeated (labels stay labels)."""
    if scale == 1:
        return picture
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def outline(picture: np.ndarray, region: np.ndarray, thickness: int = 1) -> np.ndarray:
    """A copy of ``picture`` (H,W,3) uint8 with the outer contours of ``region`` (H,W) bool drawn on it: a line
    ``thickness`` pixels wide in ``OUTLINE`` over a rim two pixels wider in ``RIM``."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.ascontiguousarray(picture, dtype=np.uint8).copy()
    cv2.drawContours(out, contours, -1, RIM, thickness + 2)
    cv2.drawContours(out, contours, -1, OUTLINE, thickness)
    return out


def suspect_pictures(
    image: np.ndarray, label: np.ndarray, prediction: np.ndarray, region: np.ndarray, palette: Palette
) -> dict[str, np.ndarray]:
    """One suspect: ``image`` (H,W,3) uint8, its ``label`` and the model's ``prediction`` (H,W) class indices (void
    in the label shown in the palette's void colour), and the disputed ``region`` (H,W) bool ->
    {"image", "label", "prediction"}: (s*H, s*W, 3) uint8 pictures, the region outlined on each, enlarged by
    ``display_scale``."""
    image = display_rgb(image)
    scale = display_scale(image.shape[1])
    big_region = enlarge(region, scale)
    thickness = max(1, (image.shape[1] * scale) // MIN_WIDTH)
    pictures = {"image": image, "label": palette.to_color(label), "prediction": palette.to_color(prediction)}
    return {name: outline(enlarge(p, scale), big_region, thickness) for name, p in pictures.items()}
