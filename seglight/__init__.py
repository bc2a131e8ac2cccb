"""seglight: a PyTorch Lightning framework for multiclass semantic segmentation.

The public names import from here (``from seglight import SegmentationModule``); they load on first use,
so ``import seglight`` (every ``python -m seglight.<command> --help``) does not import torch.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI on import otherwise

from seglight.config import CONF_DIR, ROOT  # noqa: E402  (registers the seglight_root resolver)

if TYPE_CHECKING:
    from seglight.data.datamodule import SegDataModule
    from seglight.data.palette import Palette
    from seglight.inference.predictor import Predictor
    from seglight.model.checkpoint import load_module
    from seglight.model.losses import build_loss
    from seglight.model.module import SegmentationModule

__version__ = "0.1.0"

_PUBLIC = {
    "SegmentationModule": "seglight.model.module",
    "SegDataModule": "seglight.data.datamodule",
    "Palette": "seglight.data.palette",
    "Predictor": "seglight.inference.predictor",
    "load_module": "seglight.model.checkpoint",
    "build_loss": "seglight.model.losses",
}
__all__ = [
    "CONF_DIR",
    "ROOT",
    "__version__",
    "SegmentationModule",
    "SegDataModule",
    "Palette",
    "Predictor",
    "load_module",
    "build_loss",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'seglight' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
