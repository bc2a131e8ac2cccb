"""smp model from plain arguments: ``create_model(arch, encoder_name, encoder_weights, in_channels, num_classes)``.

The model returns logits (B,C,H,W) (activation=None). ``encoder_weights`` is None (random init),
a hub name such as ``"imagenet"`` (needs a network or a filled hub cache), or a path to a local
``.pth``/``.pt``/``.safetensors`` state dict in torchvision or timm style.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from seglight.util.network import reachable

log = logging.getLogger(__name__)

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


class WeightsUnavailableError(RuntimeError):
    """Pretrained encoder weights could not be fetched or loaded."""


def create_model(
    arch: str,
    encoder_name: str,
    encoder_weights: str | None = None,
    in_channels: int = 3,
    num_classes: int = 2,
    **kwargs,
) -> nn.Module:
    key = arch.lower().replace("_", "").replace("-", "")
    if key not in smp.MODEL_ARCHITECTURES_MAPPING:
        names = sorted(model.__name__ for model in smp.MODEL_ARCHITECTURES_MAPPING.values())
        raise ValueError(f"unknown arch {arch!r}; choose one of {names}")
    local = encoder_weights is not None and (
        Path(str(encoder_weights)).suffix in WEIGHT_FILE_SUFFIXES or os.sep in str(encoder_weights)
    )
    hub = None if local or encoder_weights is None else str(encoder_weights)
    try:
        with _offline_if_no_network(hub is not None):
            model = smp.create_model(
                smp.MODEL_ARCHITECTURES_MAPPING[key].__name__,
                encoder_name=encoder_name,
                encoder_weights=hub,
                in_channels=in_channels,
                classes=num_classes,
                activation=None,
                **kwargs,
            )
    except (OSError, ConnectionError, RuntimeError) as e:
        if hub is None:
            raise
        raise WeightsUnavailableError(
            f"could not get {hub!r} weights for encoder {encoder_name!r} ({type(e).__name__}: {e}). "
            "This machine looks offline. Give the weights as a local file instead: "
            "encoder.weights=/path/to/weights.pth (a torchvision or timm state dict), or encoder.weights=null"
        ) from None
    if local:
        load_encoder_weights(model.encoder, Path(str(encoder_weights)).expanduser())
    return model


@contextmanager
def _offline_if_no_network(needed: bool, host: str = "huggingface.co"):
    """Sets HF_HUB_OFFLINE=1 while the hub is unreachable, so a download fails at once instead of retrying."""
    if not needed or os.environ.get("HF_HUB_OFFLINE"):
        yield
        return
    online = reachable(host)
    if not online:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if not online:
            os.environ.pop("HF_HUB_OFFLINE", None)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"{path}: not a state dict (got {type(state).__name__})")
    return state


def load_encoder_weights(encoder: nn.Module, path: Path) -> tuple[list[str], list[str]]:
    """Loads a torchvision/timm-style state dict into an smp encoder; returns (missing, unexpected) keys.

    Prefixes ``module.``, ``model.``, ``encoder.`` and ``backbone.`` are stripped; classifier keys
    (``fc.``, ``classifier.``, ``head.``) are dropped. Fails if no key matches.
    """
    state = _read_state_dict(path)
    own = encoder.state_dict()
    cleaned: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        for prefix in ("module.", "model.", "encoder.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if k.split(".")[0] in ("fc", "classifier", "head", "last_linear"):
            continue
        cleaned[k] = v
    shape_mismatch = sorted(k for k, v in cleaned.items() if k in own and own[k].shape != v.shape)
    usable = {k: v for k, v in cleaned.items() if k in own and k not in shape_mismatch}
    missing = sorted(set(own) - set(usable))
    unexpected = sorted(set(cleaned) - set(own)) + shape_mismatch
    if not usable:
        raise WeightsUnavailableError(
            f"{path}: none of its {len(state)} keys match the encoder (e.g. {list(state)[:3]} vs {list(own)[:3]})"
        )
    encoder.load_state_dict(usable, strict=False)  # smp encoders may return None here: keys counted above
    log.info(
        "loaded encoder weights from %s: %d/%d tensors; missing %d %s; unexpected %d %s",
        path,
        len(usable),
        len(own),
        len(missing),
        missing[:5],
        len(unexpected),
        unexpected[:5],
    )
    return missing, unexpected
