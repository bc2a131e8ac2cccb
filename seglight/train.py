"""python -m seglight.train [overrides]: train a segmentation model (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra
from seglight.model.metrics import MONITOR


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float:
    from seglight.training.fit import train  # imported late: `--help` and config errors stay fast

    return train(cfg)[MONITOR]  # the value a hyperparameter sweeper optimises


def main() -> None:
    run_hydra(_main, "train")


if __name__ == "__main__":
    main()
