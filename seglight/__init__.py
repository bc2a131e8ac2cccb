"""seglight: a PyTorch Lightning framework for multiclass semantic segmentation."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI on import otherwise

from seglight.config import CONF_DIR, ROOT  # noqa: E402  (registers the seglight_root resolver)

__version__ = "0.1.0"
__all__ = ["CONF_DIR", "ROOT", "__version__"]
