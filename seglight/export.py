"""python -m seglight.export ckpt=PATH format=onnx|onnx_int8|torchscript output=DIR (see conf/export.yaml)."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra

FILES = {"onnx": "model.onnx", "onnx_int8": "model.int8.onnx", "torchscript": "model.torchscript.pt"}


@hydra.main(config_path=str(CONF_DIR), config_name="export", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.checkpoint import load_module
    from seglight.data.io import read_image
    from seglight.exporting import export_onnx, export_onnx_int8, export_smp, export_torchscript
    from seglight.prediction import list_inputs
    if cfg.format not in FILES:
        raise ValueError(f"unknown format {cfg.format!r}; choose one of {sorted(FILES)}")
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    module = load_module(cfg.ckpt)
    target = out / FILES[cfg.format]
    if cfg.format == "onnx_int8":
        if not cfg.calibration:
            raise ValueError("format=onnx_int8 needs calibration=DIR|GLOB of representative images (e.g. val images)")
        images = [read_image(p) for p in list_inputs(cfg.calibration)[:cfg.calibration_images]]
        results = {target.name: export_onnx_int8(module, target, images, cfg.opset)}
    elif cfg.format == "onnx":
        results = {target.name: export_onnx(module, target, cfg.opset)}
    else:
        results = {target.name: export_torchscript(module, target)}
    if cfg.smp_folder:
        results["smp/"] = export_smp(module, out / "smp")
    failed = False
    for name, r in results.items():
        need = cfg.min_agreement_int8 if name == FILES["onnx_int8"] else cfg.min_agreement
        ok = r["argmax_agreement"] >= need
        failed |= not ok
        print(f"{out / name}: max |logit diff| {r['max_abs_diff']:.2e}, argmax agreement "
              f"{r['argmax_agreement']:.4%} vs torch {'OK' if ok else 'BELOW ' + str(need)}")
    if failed:
        sys.exit(1)


def main() -> None:
    run_hydra(_main, "export")


if __name__ == "__main__":
    main()
