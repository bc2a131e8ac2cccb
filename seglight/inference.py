"""Whole-image prediction: normalise, pad to a multiple of 32, softmax over classes, argmax, crop back."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from seglight.models.module import SegmentationModule


def to_input(image: np.ndarray, mean, std) -> torch.Tensor:
    """(H,W,3) uint8 -> (1,3,H,W) float normalised."""
    x = torch.tensor(image).permute(2, 0, 1).float().div_(255)  # copies: PIL arrays are read-only
    return ((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]).unsqueeze(0)


@torch.inference_mode()
def predict_probs(model: SegmentationModule, images: torch.Tensor, divisor: int = 32) -> torch.Tensor:
    """images (B,3,H,W) normalised, any H,W -> probabilities (B,C,H,W) float32 (softmax over dim=1)."""
    model.eval()
    h, w = images.shape[-2:]
    pad_h, pad_w = (-h) % divisor, (-w) % divisor
    x = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
    logits = model(x.to(model.device))[..., :h, :w]
    return logits.float().softmax(dim=1)


def predict_mask(model: SegmentationModule, image: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 RGB -> index mask (H,W) uint8, with the checkpoint's own normalisation."""
    hp = model.hparams
    probs = predict_probs(model, to_input(image, hp.mean, hp.std))
    return probs.argmax(dim=1)[0].byte().cpu().numpy()
