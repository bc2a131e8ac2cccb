"""Export a checkpoint: ONNX (dynamic batch/height/width, metadata), TorchScript, and smp's save_pretrained.

Each export checks itself against the torch model on a sample input and reports the largest absolute
difference of the logits and the argmax agreement.
"""

from __future__ import annotations

import json
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from seglight.data.transforms import normalize, pad_to_multiple, to_input
from seglight.inference import hub
from seglight.model.checkpoint import load_checkpoint, load_module
from seglight.model.module import SegmentationModule
from seglight.util.files import atomic_write
from seglight.util.hardware import cpu_has_vnni

Images = list[np.ndarray]  # (H,W,C) images as read_image gives them


def metadata(module: SegmentationModule) -> dict[str, Any]:
    """What a deployed model needs besides its weights: classes, colours, normalisation, architecture."""
    hp = module.hp
    return {
        "class_names": module.class_names,
        "colors": [list(c) for c in module.palette.colors],
        "ignore_index": hp.ignore_index,
        "mean": list(hp.mean),
        "std": list(hp.std),
        "arch": hp.arch,
        "encoder_name": hp.encoder_name,
        "in_channels": hp.in_channels,
        "divisor": module.divisor,
        "tile_size": hp.tile_size,  # as validation tiled large images: predict and evaluate do the same
        "tile_overlap": hp.tile_overlap,
        "temperature": module.temperature,
        "code_version": module.code_version,
        # the run's data config and split files (None: not recorded): evaluate scores the run's own split and
        # says when the model trained on (train_on_val, init_from) or was chosen on (chosen_on) the images it scores
        "data_split": module.data_split,
        "chosen_on": module.chosen_on,
        "input": f"image (B,{hp.in_channels},H,W) float, normalised with mean/std, H, W multiples of {module.divisor}",
        "output": "logits (B,C,H,W); probabilities are softmax(logits / temperature) (several windows or TTA "
        "passes: softmax(log(mean of softmax(logits)) / temperature))",
    }


def sample_input(
    module: SegmentationModule, batch: int = 2, size: tuple[int, int] = (256, 320), seed: int = 0
) -> torch.Tensor:
    """A smooth random image batch (B,N,H,W), normalised like training data, for self-checks: RGB drawn in [0,1] and
    normalised; multispectral drawn in normalised units (its mean/std are in the files' units)."""
    g = torch.Generator().manual_seed(seed)
    channels = len(module.hp.mean)
    draw = torch.rand if channels == 3 else torch.randn
    low = draw(batch, channels, size[0] // 16, size[1] // 16, generator=g)
    smooth = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    return normalize(smooth, module.hp.mean, module.hp.std) if channels == 3 else smooth


def compare(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Logits (B,C,H,W) of two backends -> largest absolute difference and argmax agreement."""
    return {
        "max_abs_diff": float(np.abs(reference - other).max()),
        "argmax_agreement": float((reference.argmax(1) == other.argmax(1)).mean()),
    }


@torch.inference_mode()
def _self_check(
    module: SegmentationModule, run: Callable[[torch.Tensor], np.ndarray], inputs: list[torch.Tensor] | None = None
) -> dict[str, float]:
    """``run`` (the exported model) against torch: the largest logit difference and the mean argmax agreement
    over ``inputs`` (default: one input of another shape than the trace, which tests the dynamic axes)."""
    inputs = inputs or [sample_input(module, batch=1, size=(224, 352), seed=1)]
    results = [compare(module.model(x).float().numpy(), run(x)) for x in inputs]
    return {
        "max_abs_diff": max(r["max_abs_diff"] for r in results),
        "argmax_agreement": float(np.mean([r["argmax_agreement"] for r in results])),
    }


def _onnx_runner(path: Path) -> Callable[[torch.Tensor], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x.numpy()})[0]


def _write_onnx(module: SegmentationModule, path: Path, opset: int) -> None:
    """The fp32 model as one .onnx file (legacy exporter, no external-data sidecar), dynamic batch and size."""
    model = module.model.eval().to(memory_format=torch.contiguous_format)
    torch.onnx.export(
        model,
        (sample_input(module),),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        opset_version=opset,
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}},
        dynamo=False,
    )


def _set_metadata(module: SegmentationModule, path: Path) -> None:
    """Stores seglight's metadata (classes, colours, normalisation) in the .onnx file, replacing any earlier."""
    _update_onnx_metadata(path, lambda _: metadata(module))


def _update_onnx_metadata(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrites the .onnx file's seglight metadata as ``change(current)`` ({} where it has none), loading the
    model once and writing it atomically."""
    import onnx

    proto = onnx.load(str(path))
    current = {e.key: e.value for e in proto.metadata_props}
    info = change(json.loads(current["seglight"]) if "seglight" in current else {})
    kept = [(k, v) for k, v in current.items() if k != "seglight"]
    del proto.metadata_props[:]
    for key, value in [*kept, ("seglight", json.dumps(info))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))


def store_temperature(path: str | Path, temperature: float) -> Path:
    """Writes a fitted softmax temperature into a model file: a .ckpt (its ``temperature`` entry), an .onnx
    file (its seglight metadata) or an exported folder (its seglight.json), rewritten atomically with its
    permissions kept. A symlink is followed: the file it points to is updated. Returns the path written."""
    path = Path(path).resolve()
    if path.is_dir():  # an export format=hf folder: its seglight.json
        info = json.loads((path / "seglight.json").read_text())
        info["temperature"] = float(temperature)
        atomic_write(path / "seglight.json", lambda f: f.write(json.dumps(info, indent=2).encode()))
        return path / "seglight.json"
    mode = path.stat().st_mode
    if path.suffix == ".onnx":

        def with_temperature(info: dict[str, Any]) -> dict[str, Any]:
            if not info:
                raise ValueError(f"{path}: no seglight metadata; export it with python -m seglight.export")
            return {**info, "temperature": float(temperature)}

        _update_onnx_metadata(path, with_temperature)
    else:
        ckpt = load_checkpoint(path)
        ckpt["temperature"] = float(temperature)
        atomic_write(path, lambda f: torch.save(ckpt, f), fsync=True)
    path.chmod(stat.S_IMODE(mode))
    return path


def export_onnx(module: SegmentationModule, path: Path, opset: int = 17) -> dict[str, float]:
    """Writes one .onnx file with seglight metadata and checks it against torch."""
    _write_onnx(module, path, opset)
    _set_metadata(module, path)
    return _self_check(module, _onnx_runner(path))


def export_onnx_int8(
    module: SegmentationModule, path: Path, calibration: Images, opset: int = 17, check: Images | None = None
) -> dict[str, float]:
    """Static int8 quantisation of the ONNX export (QDQ, per-channel int8 weights, uint8 activations whose
    ranges are calibrated on ``calibration``: representative images (H,W,3) uint8, e.g. 16 val images).

    The check runs on ``check`` (default: ``calibration``): int8 clips activations beyond the calibrated ranges.
    Without VNNI (AVX2 only) weights use 7 bits (``reduce_range``) so that int8 products cannot saturate.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 export needs calibration images (calibration=DIR of representative images)")
    hp = module.hp
    inputs, checked = (  # padded as the predictor pads them
        [pad_to_multiple(to_input(im, hp.mean, hp.std), module.divisor).numpy() for im in images]
        for images in (calibration, check or calibration)
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"image": x} for x in inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp32, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        _write_onnx(module, fp32, opset)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        vnni = cpu_has_vnni()
        quantize_static(
            str(prepared),
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=not vnni,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    _update_onnx_metadata(path, lambda _: {**metadata(module), "int8_full_range": vnni})  # OnnxPredictor warns
    return _self_check(module, _onnx_runner(path), [torch.from_numpy(x) for x in checked])


def export_torchscript(module: SegmentationModule, path: Path) -> dict[str, float]:
    model = module.model.eval().to(memory_format=torch.contiguous_format)
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model, sample_input(module), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"seglight.json": json.dumps(metadata(module))})
    loaded: Any = torch.jit.load(str(path))
    return _self_check(module, lambda x: loaded(x).numpy())


def export_smp(module: SegmentationModule, folder: Path) -> dict[str, float]:
    """smp's save_pretrained format: ``smp.from_pretrained(folder)`` loads the trained weights in plain smp."""
    import segmentation_models_pytorch as smp

    model: Any = module.model  # an smp model (typed as a Module attribute)
    model.save_pretrained(str(folder))
    (folder / "seglight.json").write_text(json.dumps(metadata(module), indent=2))
    loaded: Any = smp.from_pretrained(str(folder)).eval()
    return _self_check(module, lambda x: loaded(x).numpy())


FILES = {"onnx": "model.onnx", "onnx_int8": "model.int8.onnx", "torchscript": "model.torchscript.pt"}


def export_checkpoint(
    ckpt: str | Path,
    format: str,
    output: str | Path,
    opset: int = 17,
    smp_folder: bool = True,
    calibration: str | None = None,
    calibration_images: int = 16,
    min_agreement: float = 0.999,
    min_agreement_int8: float = 0.99,
    push_to_hub: str | None = None,
) -> bool:
    """Exports a checkpoint as ``format`` (``FILES``, or ``hf``: smp's folder with a model card, see
    seglight.inference.hub) into ``output`` (and smp's folder), prints each export's self-check against torch;
    False if an argmax agreement is below its threshold (int8 has its own) or a requested push failed."""
    from seglight.data.io import read_image
    from seglight.inference.files import calibration_split, list_inputs

    if format not in FILES and format != "hf":
        raise ValueError(f"unknown format {format!r}; choose one of {sorted([*FILES, 'hf'])}")
    if push_to_hub and format != "hf":
        raise ValueError(f"push_to_hub uploads a format=hf folder; format={format} makes none")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    module = load_module(ckpt)
    target = out / FILES.get(format, "")
    if format == "hf":  # the folder itself: smp's files, seglight.json and the model card
        results = {"(smp save_pretrained)": (export_smp(module, out), min_agreement)}
        hub.export_hf(module, out, Path(ckpt), metadata(module))
        smp_folder = False
    elif format == "onnx_int8":
        if not calibration:
            raise ValueError("format=onnx_int8 needs calibration=DIR|GLOB of representative images (e.g. val images)")
        calibrate, check = calibration_split(list_inputs(calibration), calibration_images)
        print(f"int8: calibrated on {len(calibrate)} images, checked on {len(set(check) - set(calibrate))} others")
        images = [read_image(p, len(module.hp.mean)) for p in calibrate]
        checks = None if check == calibrate else [read_image(p, len(module.hp.mean)) for p in check]  # read once
        results = {target.name: (export_onnx_int8(module, target, images, opset, checks), min_agreement_int8)}
    elif format == "onnx":
        results = {target.name: (export_onnx(module, target, opset), min_agreement)}
    else:
        results = {target.name: (export_torchscript(module, target), min_agreement)}
    if smp_folder:
        results["smp/"] = (export_smp(module, out / "smp"), min_agreement)
    passed = True
    for name, (r, need) in results.items():
        ok = r["argmax_agreement"] >= need
        passed &= ok
        print(
            f"{out / name}: max |logit diff| {r['max_abs_diff']:.2e}, argmax agreement "
            f"{r['argmax_agreement']:.4%} vs torch {'OK' if ok else 'BELOW ' + str(need)}"
        )
        if not ok and (out / name).is_file():  # predict must not pick it up as a checked export
            (out / name).replace(failed := out / name.replace(".", ".failed.", 1))
            print(f"{out / name}: moved to {failed}", file=sys.stderr)
    if push_to_hub and not passed:
        print(f"not pushed to {push_to_hub}: the export's self-check failed", file=sys.stderr)
    if push_to_hub and passed:
        try:
            print(f"pushed to {hub.push_to_hub(out, push_to_hub)}")
        except ConnectionError as e:
            print(e, file=sys.stderr)
            return False
    return passed
