"""python -m seglight.export ckpt=PATH format=onnx|onnx_int8|torchscript output=DIR (see conf/export.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="export", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.inference.export import export_checkpoint
    from seglight.util.values import plain

    if not export_checkpoint(**plain(cfg)):
        sys.exit(1)


def main() -> None:
    run_hydra(_main, "export")


if __name__ == "__main__":
    main()
