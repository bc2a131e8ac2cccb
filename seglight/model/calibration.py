"""How far a model's softmax confidence can be taken at its word: expected calibration error (ECE), the
reliability diagram's bins, and temperature scaling.

Confidence is a pixel's largest class probability, correct means that class is the label; void pixels are
left out. ECE = sum over equal-width confidence bins of (pixels in bin / pixels) * |accuracy - confidence|.
Temperature scaling divides the logits by one T > 0 fitted to minimise the negative log-likelihood on held-out
pixels (Guo et al. 2017): T > 1 softens an over-confident model; the argmax, so every mask and IoU, is unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

BINS = 15


class ReliabilityBins:
    """Accumulates per confidence bin: pixel count, summed confidence and correct pixels."""

    def __init__(self, bins: int = BINS) -> None:
        self.edges = np.linspace(0.0, 1.0, bins + 1)
        self.count = np.zeros(bins, dtype=np.int64)
        self.confidence = np.zeros(bins, dtype=np.float64)
        self.correct = np.zeros(bins, dtype=np.int64)

    def update(
        self, probs: np.ndarray, target: np.ndarray, ignore_index: int = 255, pred: np.ndarray | None = None
    ) -> None:
        """probs (C,H,W) summing to 1 over C, target (H,W) class indices or ``ignore_index``; ``pred`` (H,W), the
        argmax of probs, where the caller has it already."""
        valid = target != ignore_index
        confidence = probs.max(axis=0)[valid].astype(np.float64)
        pred = probs.argmax(axis=0) if pred is None else pred
        correct = pred[valid] == target[valid]
        which = np.clip(np.searchsorted(self.edges, confidence, side="right") - 1, 0, len(self.count) - 1)
        self.count += np.bincount(which, minlength=len(self.count))
        self.confidence += np.bincount(which, weights=confidence, minlength=len(self.count))
        self.correct += np.bincount(which, weights=correct, minlength=len(self.count)).astype(np.int64)

    def accuracy(self) -> np.ndarray:
        """(bins,) accuracy per bin, NaN for an empty bin."""
        return np.where(self.count > 0, self.correct / np.maximum(self.count, 1), np.nan)

    def mean_confidence(self) -> np.ndarray:
        """(bins,) mean confidence per bin, NaN for an empty bin."""
        return np.where(self.count > 0, self.confidence / np.maximum(self.count, 1), np.nan)

    def ece(self) -> float:
        total = self.count.sum()
        if total == 0:
            return float("nan")
        gap = np.abs(self.correct - self.confidence)  # per bin: count * |accuracy - mean confidence|
        return float(gap.sum() / total)


class PixelSample:
    """A seeded random sample of up to ``per_image`` non-void pixels per image: their log-probabilities (M,C)
    and labels (M,), what ``fit_temperature`` needs without holding every pixel of the split."""

    def __init__(self, per_image: int = 2000, seed: int = 0) -> None:
        self.per_image = per_image
        self.rng = np.random.default_rng(seed)
        self.log_probs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def update(self, probs: np.ndarray, target: np.ndarray, ignore_index: int = 255) -> None:
        """probs (C,H,W), target (H,W)."""
        where = np.flatnonzero(target.reshape(-1) != ignore_index)
        if len(where) > self.per_image:
            where = self.rng.choice(where, self.per_image, replace=False)
        flat = probs.reshape(probs.shape[0], -1)[:, where].T  # (m,C)
        self.log_probs.append(np.log(np.maximum(flat, 1e-30)).astype(np.float32))
        self.labels.append(target.reshape(-1)[where].astype(np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(M,C) log-probabilities, (M,) labels."""
        if not self.labels:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.concatenate(self.log_probs), np.concatenate(self.labels)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 100) -> float:
    """(M,C) logits (or log-probabilities: a per-pixel shift does not change the softmax) and (M,) labels ->
    the T minimising the mean negative log-likelihood of softmax(logits / T), fitted on log T by L-BFGS."""
    if len(labels) == 0:
        raise ValueError("no labelled pixels to fit a temperature on")
    x, y = torch.from_numpy(logits).double(), torch.from_numpy(labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def sample_ece(log_probs: np.ndarray, labels: np.ndarray, temperature: float = 1.0, bins: int = BINS) -> float:
    """ECE of softmax(log_probs / temperature) over a pixel sample (M,C), (M,)."""
    probs = torch.from_numpy(log_probs).double().div(temperature).softmax(dim=1).numpy()  # (M,C)
    reliability = ReliabilityBins(bins)
    reliability.update(probs.T[:, :, None], labels[:, None], ignore_index=-1)
    return reliability.ece()
