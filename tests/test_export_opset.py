"""ONNX export writes the opset asked for, from the library function and through the export CLI."""

from pathlib import Path

import onnx
import pytest
import torch

from seglight import export
from seglight.config import compose_config
from seglight.inference.export import export_onnx
from seglight.model.module import SegmentationModule


def tiny_module() -> SegmentationModule:
    """A randomly initialised two-class Unet (no weight download)."""
    torch.manual_seed(0)
    return SegmentationModule(class_names=["a", "b"], arch="Unet", encoder_name="resnet18").eval()


def default_opset(path: Path) -> int:
    """The version of the default ("") domain in the model's opset_import."""
    versions = [o.version for o in onnx.load(str(path)).opset_import if o.domain == ""]
    assert len(versions) == 1, versions
    return versions[0]


@pytest.mark.parametrize("opset", [13, 17])
def test_export_onnx_writes_the_requested_opset(tmp_path, opset):
    result = export_onnx(tiny_module(), tmp_path / "model.onnx", opset=opset)
    assert default_opset(tmp_path / "model.onnx") == opset
    assert result["max_abs_diff"] < 1e-3


def test_export_cli_passes_opset(tmp_path):
    module = tiny_module()
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    out = tmp_path / "out"
    cfg = compose_config(
        [f"ckpt={ckpt}", "format=onnx", "opset=13", f"output={out}", "smp_folder=false", "min_agreement=0"],
        config_name="export",
    )
    export._main(cfg)
    assert default_opset(out / "model.onnx") == 13
