"""python -m seglight.export ckpt=PATH format=onnx|torchscript output=DIR (see conf/export.yaml)."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra

FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}


@hydra.main(config_path=str(CONF_DIR), config_name="export", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.checkpoint import load_module
    from seglight.exporting import export_onnx, export_smp, export_torchscript
    if cfg.format not in FILES:
        raise ValueError(f"unknown format {cfg.format!r}; choose one of {sorted(FILES)}")
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    module = load_module(cfg.ckpt)
    export = export_onnx if cfg.format == "onnx" else export_torchscript
    results = {FILES[cfg.format]: export(module, out / FILES[cfg.format])}
    if cfg.smp_folder:
        results["smp/"] = export_smp(module, out / "smp")
    failed = False
    for name, r in results.items():
        ok = r["argmax_agreement"] >= cfg.min_agreement
        failed |= not ok
        print(f"{out / name}: max |logit diff| {r['max_abs_diff']:.2e}, argmax agreement "
              f"{r['argmax_agreement']:.4%} vs torch {'OK' if ok else 'BELOW ' + str(cfg.min_agreement)}")
    if failed:
        sys.exit(1)


def main() -> None:
    run_hydra(_main, "export")


if __name__ == "__main__":
    main()
