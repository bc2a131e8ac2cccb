"""smp model from plain arguments: ``create_model(arch, encoder_name, encoder_weights, in_channels, num_classes)``.

The model returns logits (B,C,H,W) (activation=None). ``encoder_weights`` is None (random init),
a hub name such as ``"imagenet"`` (needs a network or a filled hub cache), or a path to a local
``.pth``/``.pt``/``.safetensors`` state dict in torchvision or timm style. timm encoders (``tu-<model>``) take
timm's own weights: a hub name means timm's default variant of the model (``tu-<model>.<tag>`` picks another),
and a local file is loaded by timm (strict, with timm's key mapping).

The model also answers what its input must look like (``input_divisor``) and freezes its encoder
(``set_encoder_frozen``).
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import segmentation_models_pytorch.encoders as smp_encoders
import torch
from torch import nn

from seglight.util.network import reachable

log = logging.getLogger(__name__)
_SAVED: ContextVar[str] = ContextVar("saved_module", default="")  # the checkpoint being loaded (saved_module)

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
    model_class = _arch_class(arch)
    check_model_kwargs(arch, encoder_name, kwargs)
    local = encoder_weights is not None and (
        Path(str(encoder_weights)).suffix in WEIGHT_FILE_SUFFIXES or os.sep in str(encoder_weights)
    )
    path = Path(str(encoder_weights)).expanduser() if local else None
    hub = None if local or encoder_weights is None else str(encoder_weights)
    is_timm = encoder_name.startswith("tu-")
    weights: str | bool | None = True if is_timm and encoder_weights is not None else hub  # tu-: smp wants a bool
    if is_timm and path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"encoder weights file not found: {path}")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}  # timm loads it in place of its hub download
    try:
        with _offline_if_no_network(hub is not None):
            model = smp.create_model(
                model_class.__name__,
                encoder_name=encoder_name,
                encoder_weights=weights,
                in_channels=in_channels,
                classes=num_classes,
                activation=None,
                **kwargs,
            )
    except (OSError, ConnectionError, RuntimeError, KeyError) as e:  # KeyError: timm's key mapping of a file
        if path is not None and is_timm:
            raise WeightsUnavailableError(
                f"{path}: timm could not load it into encoder {encoder_name!r} ({type(e).__name__}: {e}). "
                f"Give a timm state dict of that model (timm.create_model({encoder_name[3:]!r}).state_dict())"
            ) from None
        if hub is None or isinstance(e, KeyError):
            raise
        raise WeightsUnavailableError(
            f"could not get {hub!r} weights for encoder {encoder_name!r} ({type(e).__name__}: {e}). "
            "This machine looks offline. Give the weights as a local file instead: "
            "encoder.weights=/path/to/weights.pth (a torchvision or timm state dict), or encoder.weights=null"
        ) from None
    if path is not None and not is_timm:
        load_encoder_weights(model.encoder, path)
    return model


def dropped_model_kwargs(arch: str, encoder_name: str, kwargs: dict[str, Any]) -> list[str]:
    """The keys of ``kwargs`` that smp would drop without a word: those neither ``arch``'s ``__init__`` nor smp's
    ``get_encoder`` names (``output_stride`` reaches the latter) go on to the encoder, and smp's own encoders ignore
    them. timm encoders (``tu-``, and the ``timm-`` names smp runs through timm) take such keys themselves (e.g.
    ``drop_path_rate``) and reject the ones they do not know, so nothing is dropped there."""
    if not kwargs or encoder_name.startswith("tu-") or smp_encoders.is_equivalent_to_timm_universal(encoder_name):
        return []
    init = _arch_class(arch).__init__  # type: ignore[misc]
    named = {p.name for p in inspect.signature(init).parameters.values() if p.kind is not p.VAR_KEYWORD}
    named |= set(inspect.signature(smp_encoders.get_encoder).parameters) - {"kwargs"}
    try:
        named |= set(re.findall(r"kwargs\.pop\(\s*[\"'](\w+)[\"']", inspect.getsource(init)))  # deprecated aliases
    except OSError:  # smp installed without its sources: aliases unknown, so none refused
        return []
    return sorted(set(kwargs) - named)


@contextmanager
def saved_module(source: str):
    """While a saved module is rebuilt from ``source`` (a checkpoint), ``saved_model_kwargs`` leaves out the
    model_kwargs smp dropped instead of letting ``create_model`` refuse them; "" changes nothing."""
    token = _SAVED.set(source)
    try:
        yield
    finally:
        _SAVED.reset(token)


def saved_model_kwargs(arch: str, encoder_name: str, kwargs: dict[str, Any] | None) -> Any:
    """``kwargs`` without the keys smp dropped (``dropped_model_kwargs``) inside ``saved_module``, else ``kwargs``
    itself: checkpoints saved before ``create_model`` refused such keys still load, and those keys never changed
    their model."""
    dropped = dropped_model_kwargs(arch, encoder_name, dict(kwargs or {})) if _SAVED.get() else []
    if not dropped:
        return kwargs
    log.info("%s: model_kwargs %s were never used by %s: left out", _SAVED.get(), dropped, arch)
    return {k: v for k, v in (kwargs or {}).items() if k not in dropped}


def check_model_kwargs(arch: str, encoder_name: str, kwargs: dict[str, Any]) -> None:
    """Refuses ``model_kwargs`` that smp would drop (``dropped_model_kwargs``): a typo or another arch's option."""
    unknown = dropped_model_kwargs(arch, encoder_name, kwargs)
    if unknown:
        init = _arch_class(arch).__init__  # type: ignore[misc]
        fixed = {"self", "encoder_name", "encoder_weights", "in_channels", "classes", "activation", "kwargs"}
        options = sorted(set(inspect.signature(init).parameters) - fixed)
        raise ValueError(
            f"model.model_kwargs {unknown} are not options of {_arch_class(arch).__name__} (smp would drop them "
            f"without a word); its options: {options}. An experiment's kwargs for another arch are cleared with "
            f"~model.model_kwargs"
        )


def _arch_class(arch: str) -> type:
    key = arch.lower().replace("_", "").replace("-", "")
    if key not in smp.MODEL_ARCHITECTURES_MAPPING:
        names = sorted(model.__name__ for model in smp.MODEL_ARCHITECTURES_MAPPING.values())
        raise ValueError(f"unknown arch {arch!r}; choose one of {names}")
    return smp.MODEL_ARCHITECTURES_MAPPING[key]


def input_divisor(model: nn.Module) -> int:
    """What H and W of the model's input must be multiples of: the encoder's output stride (32; 16 or 8 when
    dilated). DPT reassembles a ViT's patch grid (stride = the patch size) into maps at 1/4 .. 1/2^(d+1) of the
    input for an encoder of depth d, the coarsest by a strided conv: H and W must be multiples of the patch size
    and of 2^(d+1) (32 for a patch-16 ViT at depth 4; 48 fails although it is 3 patches)."""
    stride = int(getattr(getattr(model, "encoder", None), "output_stride", 32))
    if isinstance(model, smp.DPT):
        return math.lcm(stride, 2 ** (len(model.encoder.out_channels) + 1))
    return stride


def set_encoder_frozen(model: nn.Module, frozen: bool) -> bool:
    """Freezes or unfreezes ``model.encoder``; returns whether that changed anything.

    Frozen: its parameters have ``requires_grad=False`` (no gradient, so optimizers skip them, weight decay
    included) and its normalisation layers with running statistics (BatchNorm, InstanceNorm) are in eval mode,
    so the statistics stay as they are. Unfrozen: they train again (when the model is in train mode). smp's
    ``freeze_encoder`` is not used: it makes ``model.eval()`` skip the encoder, which leaves the frozen encoder's
    dropout and drop-path (mit_b0 has some) on during validation.
    """
    encoder: nn.Module = model.encoder  # type: ignore[assignment]
    changed = any(p.requires_grad == frozen for p in encoder.parameters())
    for p in encoder.parameters():
        p.requires_grad_(not frozen)
    for m in encoder.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            m.train(model.training and not frozen)
    return changed


@contextmanager
def _offline_if_no_network(needed: bool, host: str = "huggingface.co"):
    """Puts huggingface_hub in offline mode while HF_HUB_OFFLINE says so or the hub is unreachable, so a download
    fails at once instead of retrying for a minute. huggingface_hub reads the variable when it is imported:
    its constant is set too."""
    from huggingface_hub import constants

    offline_env = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not needed or constants.HF_HUB_OFFLINE or (not offline_env and reachable(host)):
        yield
        return
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


# torchvision's DenseNet files name a layer's parts "norm.1", "conv.2" where its modules are norm1, conv2 (torchvision
# renames them the same way when it loads them)
LEGACY_DENSENET = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


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
    (``fc.``, ``classifier.``, ``head.``) are dropped; DenseNet's legacy key names are renamed (``LEGACY_DENSENET``).
    Fails if no key matches, or if the file lacks tensors of the encoder or holds more inside its blocks (another
    architecture's weights); tensors of another shape (the first convolution for other ``in_channels``) are left out
    with a warning.
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
        cleaned[LEGACY_DENSENET.sub(r"\1\2.", k)] = v
    shape_mismatch = sorted(k for k, v in cleaned.items() if k in own and own[k].shape != v.shape)
    usable = {k: v for k, v in cleaned.items() if k in own and k not in shape_mismatch}
    missing = sorted(set(own) - set(usable))
    unexpected = sorted(set(cleaned) - set(own)) + shape_mismatch
    if not usable:
        raise WeightsUnavailableError(
            f"{path}: none of its {len(state)} keys match the encoder (e.g. {list(state)[:3]} vs {list(own)[:3]})"
        )
    absent = [k for k in missing if k not in shape_mismatch and not k.endswith("num_batches_tracked")]
    extra = [k for k in unexpected if k.split(".")[0] in {o.split(".")[0] for o in own} and k not in shape_mismatch]
    if absent or extra:  # e.g. resnet34 weights for resnet18: half an encoder would load without a word
        raise WeightsUnavailableError(
            f"{path}: not weights of this encoder: it lacks {len(absent)} of the encoder's tensors (e.g. "
            f"{absent[:3]}) and has {len(extra)} the encoder's blocks lack (e.g. {extra[:3]}). Give weights of the "
            "same encoder_name"
        )
    # torch's own load_state_dict: smp's overrides pop head keys (none are left here), and mit_b*'s takes no strict
    torch.nn.Module.load_state_dict(encoder, usable, strict=False)
    log.log(
        logging.WARNING if shape_mismatch else logging.INFO,
        "loaded encoder weights from %s: %d/%d tensors; missing %d %s; unexpected %d %s (shapes differ: %s)",
        path,
        len(usable),
        len(own),
        len(missing),
        missing[:5],
        len(unexpected),
        unexpected[:5],
        shape_mismatch[:5],
    )
    return missing, unexpected
