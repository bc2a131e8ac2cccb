"""python -m seglight.evaluate ckpt=PATH data=... split=val|test output=DIR (see conf/evaluate.yaml)."""

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="evaluate", version_base="1.3")
def _main(cfg: DictConfig) -> float:
    from seglight.inference.evaluation import evaluate_checkpoint
    from seglight.util.values import plain

    options = plain(cfg)
    options.pop("seed")  # only the data config reads it
    return evaluate_checkpoint(**options)["mIoU"]


def main() -> None:
    run_hydra(_main, "evaluate")


if __name__ == "__main__":
    main()
