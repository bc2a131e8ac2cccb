"""Prediction on images of any size: normalise with the checkpoint's mean/std, pad to the model's divisor,
sliding windows for images larger than a tile, optional flip TTA, softmax over classes, argmax.

A ``Predictor`` wraps either a seglight checkpoint (torch) or an exported ``.onnx`` file (onnxruntime);
both give probabilities (B,C,H,W) for normalised images (B,3,H,W).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from seglight.data.palette import Palette
from seglight.data.transforms import to_input
from seglight.model.tiling import TILE_OVERLAP, TILE_SIZE, needs_tiles, padded, sliding_window
from seglight.util.hardware import autocast_dtype, resolve_precision

log = logging.getLogger(__name__)


class Predictor:
    """Probabilities for normalised images; built by ``Predictor.load(path)`` from a .ckpt or an .onnx file.

    Args:
        tile_size: images with a side above this are predicted in overlapping tiles whose
            probabilities are averaged (a multiple of the divisor).
        tile_overlap: fraction of a tile shared with its neighbour.
        tta: also predict the horizontally flipped image and average the probabilities.
        precision: "auto" (``resolve_precision``: bf16 where the CPU/GPU runs it natively, fp16 on other GPUs,
            else fp32), or a Lightning precision ("32-true", "bf16-mixed", ...; short "32", "bf16" too).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        palette: Palette,
        mean: Sequence[float],
        std: Sequence[float],
        tile_size: int | None = TILE_SIZE,
        tile_overlap: float = TILE_OVERLAP,
        tta: bool = False,
        divisor: int = 32,
        temperature: float = 1.0,
    ) -> None:
        self.class_names = list(class_names)
        self.palette = palette
        self.mean = list(mean)
        self.std = list(std)
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.tta = tta
        self.divisor = divisor
        self.temperature = temperature  # probabilities are softmax(logits / temperature); masks do not depend on it
        self.data_split: dict[str, Any] | None = None  # how the model's training data was split, where known
        self.code_version: str | None = None  # the seglight commit that trained the model, where recorded

    # ---- construction --------------------------------------------------------------------
    @staticmethod
    def load(path: str | Path, device: str = "auto", precision: str = "auto", **kwargs) -> Predictor:
        path = Path(path)
        if path.suffix == ".onnx":
            return OnnxPredictor(path, **kwargs)
        return TorchPredictor.from_checkpoint(path, device=device, precision=precision, **kwargs)

    # ---- the model call, per backend -----------------------------------------------------
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W), H and W multiples of 32 -> logits (B,C,H,W) float32 on the CPU."""
        raise NotImplementedError

    def _masks(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W), H and W multiples of 32 -> argmax over classes (B,H,W) uint8 on the CPU.

        numpy's argmax: torch's over dim 1 of contiguous logits is several times slower on a CPU."""
        return torch.from_numpy(self._logits(x).numpy().argmax(axis=1).astype(np.uint8))

    # ---- shared pipeline -----------------------------------------------------------------
    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W), H and W multiples of the divisor -> probabilities (B,C,H,W), softmax(logits / T)."""
        logits = self._logits(x)
        return (logits / self.temperature if self.temperature != 1.0 else logits).softmax(dim=1)

    def _padded_probs(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) of any size -> probabilities (B,C,H,W); with TTA averaged with those of the mirrored image
        (mirrored before padding, so both passes see the image at the same place)."""
        probs = padded(self._probs, x, self.divisor)
        if self.tta:
            probs = (probs + padded(self._probs, x.flip(-1), self.divisor).flip(-1)) / 2
        return probs

    def predict_probs(self, images: torch.Tensor) -> torch.Tensor:
        """images (B,3,H,W) normalised, any H,W -> probabilities (B,C,H,W) float32 summing to 1 over dim=1."""
        if self.tile_size is None or not needs_tiles(images, self.tile_size):
            return self._padded_probs(images)
        return sliding_window(
            self._padded_probs, images, len(self.class_names), self.tile_size, self.tile_overlap, self.divisor
        )

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """(H,W,3) uint8 RGB -> probabilities (C,H,W) float32."""
        return self.predict_probs(to_input(image, self.mean, self.std))[0].numpy()

    def predict_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Images of one size predicted as one batch -> a list of probabilities (C,H,W)."""
        batch = torch.cat([to_input(im, self.mean, self.std) for im in images])
        return list(self.predict_probs(batch).numpy())

    def predict_masks(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Images of one size predicted as one batch -> a list of index masks (H,W) uint8.

        The argmax of the softmax probabilities. With one model call per image (no flip TTA, no tiles) it
        is taken on the logits, which gives the same mask (softmax keeps the order of each pixel's scores)
        without computing and copying (B,C,H,W) probabilities."""
        batch = torch.cat([to_input(im, self.mean, self.std) for im in images])
        if self.tta or needs_tiles(batch, self.tile_size):
            return [p.argmax(0).astype(np.uint8) for p in self.predict_probs(batch).numpy()]
        return list(padded(self._masks, batch, self.divisor).numpy())


class TorchPredictor(Predictor):
    def __init__(self, module, device: str = "auto", precision: str = "auto", **kwargs) -> None:
        hp = module.hp
        kwargs.setdefault("divisor", module.divisor)
        kwargs.setdefault("temperature", module.temperature)
        super().__init__(module.class_names, module.palette, hp.mean, hp.std, **kwargs)
        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
        )
        self.module = module.to(self.device).eval()
        self.data_split = module.data_split
        self.code_version = module.code_version
        self.module.model.to(memory_format=torch.channels_last)
        self.precision = resolve_precision(precision, self.device.type)
        log.info("predicting on %s, precision %s", self.device, self.precision)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", precision: str = "auto", **kwargs):
        from seglight.model.checkpoint import load_module

        return cls(load_module(path), device=device, precision=precision, **kwargs)

    @torch.inference_mode()
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        dtype = autocast_dtype(self.precision)
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            logits = self.module.model(x)
        return logits.float().cpu()


class OnnxPredictor(Predictor):
    """An exported model run with onnxruntime; classes, palette and normalisation from its metadata."""

    def __init__(self, path: str | Path, **kwargs) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "seglight" not in meta:
            raise ValueError(f"{path}: no seglight metadata; export it with python -m seglight.export")
        info = json.loads(meta["seglight"])
        palette = Palette(info["class_names"], [tuple(c) for c in info["colors"]], ignore_index=info["ignore_index"])
        kwargs.setdefault("divisor", info.get("divisor", 32))  # exports before the divisor was recorded: 32
        kwargs.setdefault("temperature", info.get("temperature", 1.0))
        super().__init__(info["class_names"], palette, info["mean"], info["std"], **kwargs)
        self.input_name = self.session.get_inputs()[0].name
        self.code_version = info.get("code_version")

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)
