"""Configs as plain values: what library functions and checkpoints take (no OmegaConf objects inside)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def plain(cfg: DictConfig) -> dict[str, Any]:
    """A config node as plain, resolved values (dicts, lists, numbers, strings)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(container, dict):
        raise TypeError(f"expected a config mapping, got {type(container).__name__}")
    return {str(k): v for k, v in container.items()}
