"""Export a checkpoint: ONNX (dynamic batch/height/width, metadata), TorchScript, and smp's save_pretrained.

Each export checks itself against the torch model on a sample input and reports the largest absolute
difference of the logits and the argmax agreement.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from seglight.models.module import SegmentationModule

def metadata(module: SegmentationModule) -> dict[str, Any]:
    """What a deployed model needs besides its weights: classes, colours, normalisation, architecture."""
    hp = module.hparams
    return {"class_names": module.class_names, "colors": [list(c) for c in module.palette.colors],
            "ignore_index": hp.ignore_index, "mean": list(hp.mean), "std": list(hp.std), "arch": hp.arch,
            "encoder_name": hp.encoder_name, "in_channels": hp.in_channels, "input": "image (B,3,H,W) float, "
            "normalised with mean/std, H and W multiples of 32", "output": "logits (B,C,H,W)"}


def sample_input(module: SegmentationModule, batch: int = 2, size: tuple[int, int] = (256, 320),
                 seed: int = 0) -> torch.Tensor:
    """A smooth random image batch (B,3,H,W), normalised like training data, for self-checks."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, size[0] // 16, size[1] // 16, generator=g)
    rgb = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    mean = torch.tensor(module.hparams.mean)[:, None, None]
    std = torch.tensor(module.hparams.std)[:, None, None]
    return (rgb - mean) / std


def compare(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Logits (B,C,H,W) of two backends -> largest absolute difference and argmax agreement."""
    return {"max_abs_diff": float(np.abs(reference - other).max()),
            "argmax_agreement": float((reference.argmax(1) == other.argmax(1)).mean())}


@torch.inference_mode()
def _self_check(module: SegmentationModule, run: Callable[[torch.Tensor], np.ndarray]) -> dict[str, float]:
    """``run`` (the exported model) against torch on an input of another shape than the trace (dynamic axes)."""
    check = sample_input(module, batch=1, size=(224, 352), seed=1)
    return compare(module.model(check).float().numpy(), run(check))


def export_onnx(module: SegmentationModule, path: Path, opset: int = 17) -> dict[str, float]:
    """Writes one .onnx file (legacy exporter, no external-data sidecar) with seglight metadata."""
    import onnx
    import onnxruntime as ort
    model = module.model.eval().to(memory_format=torch.contiguous_format)
    x = sample_input(module)
    torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["logits"], opset_version=opset,
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "logits": {0: "batch", 2: "height", 3: "width"}}, dynamo=False)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "seglight", json.dumps(metadata(module))
    onnx.save(proto, str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _self_check(module, lambda x: session.run(None, {"image": x.numpy()})[0])


def export_torchscript(module: SegmentationModule, path: Path) -> dict[str, float]:
    model = module.model.eval().to(memory_format=torch.contiguous_format)
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model, sample_input(module), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"seglight.json": json.dumps(metadata(module))})
    loaded = torch.jit.load(str(path))
    return _self_check(module, lambda x: loaded(x).numpy())


def export_smp(module: SegmentationModule, folder: Path) -> dict[str, float]:
    """smp's save_pretrained format: ``smp.from_pretrained(folder)`` loads the trained weights in plain smp."""
    import segmentation_models_pytorch as smp
    module.model.save_pretrained(str(folder))
    (folder / "seglight.json").write_text(json.dumps(metadata(module), indent=2))
    loaded = smp.from_pretrained(str(folder)).eval()
    return _self_check(module, lambda x: loaded(x).numpy())
