"""Prediction on images of any size: normalise with the checkpoint's mean/std, pad to the model's divisor,
sliding windows for images larger than a tile, optional flip TTA, softmax over classes, argmax.

A ``Predictor`` wraps either a seglight checkpoint (torch) or an exported ``.onnx`` file (onnxruntime);
both give probabilities (B,C,H,W) for normalised images (B,3,H,W).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from seglight.data.palette import Palette
from seglight.data.transforms import to_input
from seglight.inference.fold import bf16_model, check_input
from seglight.model.checkpoint import trained_on_val
from seglight.model.memory_format import to_channels_last
from seglight.model.tiling import TILE_OVERLAP, TILE_SIZE, needs_tiles, padded, sliding_window, window_weights
from seglight.util.hardware import AUTOCAST, FULL_PRECISION, autocast_dtype, cpu_has_vnni, resolve_precision

log = logging.getLogger(__name__)


class Predictor:
    """Probabilities for normalised images; built by ``Predictor.load(path)`` from a .ckpt or an .onnx file.

    Args:
        tile_size: images with a side above this are predicted in overlapping tiles whose
            probabilities are averaged (a multiple of the divisor).
        tile_overlap: fraction of a tile shared with its neighbour.
        tile_blend: how overlapping tiles are averaged: "gaussian" (weighted towards each tile's centre, no
            seams) or "uniform".
        tta: test-time augmentation (``TTA``, or its dict from conf/predictor: ``{"flip": bool, "scales": [..]}``;
            a bool means flip only): probabilities of the flipped and rescaled image averaged.
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
        tile_blend: str = "gaussian",
        tta: TTA | Mapping[str, Any] | bool = False,
        divisor: int = 32,
        temperature: float = 1.0,
    ) -> None:
        self.class_names = list(class_names)
        self.palette = palette
        self.mean = list(mean)
        self.std = list(std)
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.tile_blend = tile_blend
        window_weights(1, 1, tile_blend)  # an unknown name fails here, not at the first large image
        self.tta = TTA.of(tta)
        self.divisor = divisor
        self.temperature = temperature  # tempers the probabilities (predict_probs); masks do not depend on it
        self.data_split: dict[str, Any] | None = None  # how the model's training data was split, where known
        self.code_version: str | None = None  # the seglight commit that trained the model, where recorded
        self.chosen_on: str | None = None  # the metric that chose the checkpoint among its run's validations

    @property
    def train_on_val(self) -> bool | None:
        """Whether the model trained on its val images too; None where it records no data split."""
        return trained_on_val(self.data_split)

    # ---- construction --------------------------------------------------------------------
    @staticmethod
    def load(path: str | Path, device: str = "auto", precision: str = "auto", **kwargs) -> Predictor:
        path = Path(path)
        if path.suffix == ".onnx":
            if (device, precision) != ("auto", "auto"):  # an exported model runs as exported, on the CPU
                log.warning("%s: onnxruntime runs it on the CPU as exported; device=%s, precision=%s are not used",
                            path, device, precision)  # fmt: skip
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
        """x (B,3,H,W), H and W multiples of the divisor -> probabilities (B,C,H,W), softmax(logits); the
        temperature comes after windows and TTA passes are averaged (``predict_probs``)."""
        return self._logits(x).softmax(dim=1)

    def _padded_probs(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) of any size -> probabilities (B,C,H,W); with TTA the mean over the scales (the image resized
        by each, its probabilities resized back) and, with flip, over the mirrored image too (mirrored before
        padding, so both passes see the image at the same place)."""
        h, w = x.shape[-2:]
        total, passes = None, 0
        for scale in self.tta.scales:
            xs = x if scale == 1.0 else _resize(x, (max(1, round(h * scale)), max(1, round(w * scale))))
            for flip in (False, True) if self.tta.flip else (False,):
                probs = padded(self._probs, xs.flip(-1) if flip else xs, self.divisor)
                probs = probs.flip(-1) if flip else probs
                probs = probs if scale == 1.0 else _resize(probs, (h, w))
                total = probs if total is None else total + probs
                passes += 1
        assert total is not None
        return total / passes if passes > 1 else total

    def predict_probs(self, images: torch.Tensor) -> torch.Tensor:
        """images (B,3,H,W) normalised, any H,W -> probabilities (B,C,H,W) float32 summing to 1 over dim=1.

        The temperature T tempers the mean over windows and TTA passes, softmax(log(mean) / T): one pass gives
        softmax(logits / T), and the mask (the argmax) is the same for every T, as validation scored it."""
        if self.tile_size is None or not needs_tiles(images, self.tile_size):
            probs = self._padded_probs(images)
        else:
            probs = sliding_window(
                self._padded_probs,
                images,
                len(self.class_names),
                self.tile_size,
                self.tile_overlap,
                self.divisor,
                blend=self.tile_blend,
            )
        if self.temperature == 1.0:
            return probs
        return (probs.clamp_min(torch.finfo(probs.dtype).tiny).log() / self.temperature).softmax(dim=1)

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


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: ``flip`` adds the mirrored image, ``scales`` the image resized by each factor
    (1.0 is the image itself); every combination is one model call, their probabilities averaged."""

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    @staticmethod
    def of(value: TTA | Mapping[str, Any] | bool | None) -> TTA:
        if isinstance(value, TTA):
            return value
        if value is None or isinstance(value, bool):
            return TTA(flip=bool(value))
        scales = tuple(float(s) for s in value.get("scales", (1.0,)))
        if not scales or min(scales) <= 0:
            raise ValueError(f"tta.scales={list(scales)}: give one or more factors above 0, e.g. [0.75,1.0,1.25]")
        return TTA(flip=bool(value.get("flip", False)), scales=scales)

    def __bool__(self) -> bool:
        return self.flip or self.scales != (1.0,)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,C,H,W) -> (B,C,*size), bilinear."""
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def validated_tiling(options: Mapping[str, Any], tile_size: int | None, tile_overlap: float) -> dict[str, Any]:
    """``tile_size`` / ``tile_overlap`` for a model that validation tiled with ``tile_size``, ``tile_overlap``
    (its ``model.tile_size``): "auto" or not given takes those, so evaluate scores large images as validation
    did; another value is used as given, with a warning that large images then score differently."""
    chosen = {}
    for key, recorded in (("tile_size", tile_size), ("tile_overlap", tile_overlap)):
        value = options.get(key, "auto")
        chosen[key] = recorded if value == "auto" else value
        if value != "auto" and value != recorded:
            log.warning("%s=%s, the model was validated with %s: images above the tile size score differently "
                        "from its validation (%s=auto takes the model's)", key, value, recorded, key)  # fmt: skip
    return chosen


class TorchPredictor(Predictor):
    def __init__(self, module, device: str = "auto", precision: str = "auto", **kwargs) -> None:
        hp = module.hp
        kwargs.setdefault("divisor", module.divisor)
        kwargs.setdefault("temperature", module.temperature)
        kwargs.update(validated_tiling(kwargs, hp.get("tile_size", TILE_SIZE), hp.get("tile_overlap", TILE_OVERLAP)))
        super().__init__(module.class_names, module.palette, hp.mean, hp.std, **kwargs)
        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
        )
        self.module = module.to(self.device).eval()
        self.data_split = module.data_split
        self.code_version = module.code_version
        self.chosen_on = module.chosen_on
        to_channels_last(self.module.model)
        self.precision = resolve_precision(precision, self.device.type)
        if self.precision not in (*AUTOCAST, *FULL_PRECISION):  # e.g. "bf16-true": it would run fp32 under that name
            raise ValueError(f"precision={precision!r}: predict runs auto, {', '.join((*FULL_PRECISION, *AUTOCAST))}")
        log.info("predicting on %s, precision %s", self.device, self.precision)
        self.net = self.module.model  # what _logits calls
        if self.device.type == "cpu" and autocast_dtype(self.precision) == torch.bfloat16:
            self.net = bf16_model(self.module.model, check_input(hp.in_channels, self.divisor))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", precision: str = "auto", **kwargs):
        from seglight.model.checkpoint import load_module

        return cls(load_module(path), device=device, precision=precision, **kwargs)

    @torch.inference_mode()
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        if self.net is not self.module.model:  # bf16_model
            return self.net(x.to(torch.bfloat16)).float().cpu()
        dtype = autocast_dtype(self.precision)
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            logits = self.net(x)
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
        if info.get("int8_full_range") and not cpu_has_vnni():
            log.warning(
                "%s: quantised with full 8-bit weights for a CPU with VNNI; without it (this CPU) int8 products "
                "can saturate: export it again here, or check it with seglight.compare",
                path,
            )
        palette = Palette(info["class_names"], [tuple(c) for c in info["colors"]], ignore_index=info["ignore_index"])
        kwargs.setdefault("divisor", info.get("divisor", 32))  # exports before the divisor was recorded: 32
        kwargs.setdefault("temperature", info.get("temperature", 1.0))
        tiling = info.get("tile_size", TILE_SIZE), info.get("tile_overlap", TILE_OVERLAP)  # older exports: defaults
        kwargs.update(validated_tiling(kwargs, *tiling))
        super().__init__(info["class_names"], palette, info["mean"], info["std"], **kwargs)
        self.input_name = self.session.get_inputs()[0].name
        self.code_version = info.get("code_version")
        self.data_split = info.get("data_split")  # exports before 2026-11-27: None, held-out unchecked
        self.chosen_on = info.get("chosen_on")

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)
